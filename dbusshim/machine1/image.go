package machine1

import (
	"encoding/hex"
	"errors"
	"strings"

	"github.com/godbus/dbus/v5"

	"github.com/machined-go/machined/dbusshim/busconn"
	"github.com/machined-go/machined/service"
)

// Image object paths: /org/freedesktop/machine1/image/<label>.
const (
	imagePrefix = "/org/freedesktop/machine1/image/"
	imageNode   = dbus.ObjectPath("/org/freedesktop/machine1/image")
	imageIface  = "org.freedesktop.machine1.Image"
)

// ImagePath is the object path of the image called name.
func ImagePath(name string) dbus.ObjectPath {
	return dbus.ObjectPath(labelPath(imagePrefix, name))
}

// imageInterface is org.freedesktop.machine1.Image. Every method works on the
// object's image, named by the path and looked up again by the core for each
// call; the properties show the image as it was when the path was resolved.
func imageInterface() *iface {
	on := func(fn func(c *call, name string, rest []any) ([]any, error)) func(*call) ([]any, error) {
		return func(c *call) ([]any, error) { return fn(c, c.obj.image.Name, c.body) }
	}
	u64 := func(f func(img service.Image) uint64) func(*call) (any, error) {
		return func(c *call) (any, error) { return f(c.obj.image), nil }
	}
	return &iface{
		name: imageIface,
		methods: []method{
			{name: "Remove", fn: on(removeImage)},
			{name: "Rename", in: args("s", "new_name"), fn: on(renameImage)},
			{name: "Clone", in: args("s", "new_name", "b", "read_only"), fn: on(cloneImage)},
			{name: "MarkReadOnly", in: args("b", "read_only"), fn: on(markImageReadOnly)},
			{name: "SetLimit", in: args("t", "limit"), fn: on(setImageLimit)},
			{name: "GetHostname", out: args("s", "hostname"), fn: on(getImageHostname)},
			{name: "GetMachineID", out: args("ay", "id"), fn: on(getImageMachineID)},
			{name: "GetMachineInfo", out: args("a{ss}", "machine_info"), fn: on(getImageMachineInfo)},
			{name: "GetOSRelease", out: args("a{ss}", "os_release"), fn: on(getImageOSRelease)},
		},
		props: []property{
			{name: "Name", sig: "s", emits: emitsFalse, get: func(c *call) (any, error) { return c.obj.image.Name, nil }},
			{name: "Path", sig: "s", emits: emitsFalse, get: func(c *call) (any, error) { return c.obj.image.Path, nil }},
			{name: "Type", sig: "s", emits: emitsFalse, get: func(c *call) (any, error) { return string(c.obj.image.Type), nil }},
			{name: "ReadOnly", sig: "b", emits: emitsFalse, get: func(c *call) (any, error) { return c.obj.image.ReadOnly, nil }},
			{name: "CreationTimestamp", sig: "t", emits: emitsFalse, get: u64(func(i service.Image) uint64 { return i.CrTime })},
			{name: "ModificationTimestamp", sig: "t", emits: emitsFalse, get: u64(func(i service.Image) uint64 { return i.MTime })},
			{name: "Usage", sig: "t", emits: emitsFalse, get: u64(func(i service.Image) uint64 { return i.Usage })},
			{name: "Limit", sig: "t", emits: emitsFalse, get: u64(func(i service.Image) uint64 { return i.Limit })},
			{name: "UsageExclusive", sig: "t", emits: emitsFalse, get: u64(func(i service.Image) uint64 { return i.UsageExclusive })},
			{name: "LimitExclusive", sig: "t", emits: emitsFalse, get: u64(func(i service.Image) uint64 { return i.LimitExclusive })},
		},
	}
}

// resolveImage maps an image path to its object; a label no image answers to
// is an unknown object, as for machines, and so is every image path of a
// daemon that serves no images.
func (s *Server) resolveImage(c *call, label string) (*object, error) {
	img, err := c.mgr().GetImage(UnescapeLabel(label))
	if err != nil {
		if _, ok := service.AsInvalidArg(err); ok || isNoSuchImage(err) || errors.Is(err, service.ErrNotSupported) {
			return nil, unknownObject(c.path)
		}
		return nil, err
	}
	return &object{path: c.path, ifaces: []*iface{s.image}, image: img, children: noChildren}, nil
}

// imageChildren lists the escaped names of all images.
func (s *Server) imageChildren(c *call) []string {
	list, err := c.mgr().ListImages(c.ctx, nobody, "", service.MetadataNo)
	if err != nil {
		return nil
	}
	out := make([]string, 0, len(list))
	for _, e := range list {
		out = append(out, EscapeLabel(e.Name))
	}
	return out
}

// byImage turns an Image-object method into its Manager redirect: the first
// argument names the image, the rest are the method's own. The core checks
// the name (InvalidArgs "Image name '…' is invalid.") and finds the image
// (NoSuchImage) before the method's own rules.
func byImage(fn func(c *call, name string, rest []any) ([]any, error)) func(*call) ([]any, error) {
	return func(c *call) ([]any, error) { return fn(c, c.body[0].(string), c.body[1:]) }
}

// getImage finds an image; a name no image can have is simply not known, as
// upstream's lookup answers it.
func getImage(c *call) ([]any, error) {
	name := c.body[0].(string)
	img, err := c.mgr().GetImage(name)
	if _, ok := service.AsInvalidArg(err); ok {
		return nil, errorf(ErrNoSuchImage, "No image '%s' known", name)
	}
	if err != nil {
		return nil, err
	}
	return []any{ImagePath(img.Name)}, nil
}

// imageList is ListImages' a(ssbttto): name, type, read-only, creation and
// modification times, usage, object path. It writes itself from the core's
// entries, with no copy of them and no path string per image: the reflection
// path cost about as much as listing a thousand images.
type imageList []service.ImageEntry

func (imageList) DBusSignature() string { return "a(ssbttto)" }

func (l imageList) AppendDBus(w *busconn.Writer) error {
	a := w.ArrayStart(8)
	var path []byte
	for i := range l {
		e := &l[i]
		w.StructStart()
		if err := w.String(e.Name); err != nil {
			return err
		}
		if err := w.String(string(e.Type)); err != nil {
			return err
		}
		w.Bool(e.ReadOnly)
		w.Uint64(e.CrTime)
		w.Uint64(e.MTime)
		w.Uint64(e.Usage)
		path = appendLabelPath(path[:0], imagePrefix, e.Name)
		if err := w.ObjectPath(path); err != nil {
			return err
		}
	}
	return w.ArrayEnd(a)
}

// listImages shows no metadata, so it needs no caller: listing is open to all.
func listImages(c *call) ([]any, error) {
	list, err := c.mgr().ListImages(c.ctx, nobody, "", service.MetadataNo)
	if err != nil {
		return nil, err
	}
	return []any{imageList(list)}, nil
}

func removeImage(c *call, name string, _ []any) ([]any, error) {
	caller, err := c.callerOf()
	if err != nil {
		return nil, err
	}
	ctx, release := c.s.untilGone(c.ctx, c.sender)
	defer release()
	return nil, c.mgr().RemoveImage(ctx, caller, name)
}

func renameImage(c *call, name string, rest []any) ([]any, error) {
	caller, err := c.callerOf()
	if err != nil {
		return nil, err
	}
	return nil, c.mgr().RenameImage(c.ctx, caller, name, rest[0].(string))
}

func cloneImage(c *call, name string, rest []any) ([]any, error) {
	caller, err := c.callerOf()
	if err != nil {
		return nil, err
	}
	ctx, release := c.s.untilGone(c.ctx, c.sender)
	defer release()
	return nil, c.mgr().CloneImage(ctx, caller, name, rest[0].(string), rest[1].(bool))
}

func markImageReadOnly(c *call, name string, rest []any) ([]any, error) {
	caller, err := c.callerOf()
	if err != nil {
		return nil, err
	}
	return nil, c.mgr().MarkImageReadOnly(c.ctx, caller, name, rest[0].(bool))
}

func setImageLimit(c *call, name string, rest []any) ([]any, error) {
	caller, err := c.callerOf()
	if err != nil {
		return nil, err
	}
	return nil, c.mgr().SetImageLimit(c.ctx, caller, name, rest[0].(uint64))
}

func setPoolLimit(c *call) ([]any, error) {
	caller, err := c.callerOf()
	if err != nil {
		return nil, err
	}
	return nil, c.mgr().SetPoolLimit(c.ctx, caller, c.body[0].(uint64))
}

// removedEntry is one (st) of CleanPool.
type removedEntry struct {
	Name           string
	UsageExclusive uint64
}

func cleanPool(c *call) ([]any, error) {
	caller, err := c.callerOf()
	if err != nil {
		return nil, err
	}
	mode := c.body[0].(string)
	if mode != service.CleanPoolAll && mode != service.CleanPoolHidden {
		return nil, errorf(ErrInvalidArgs, "Unknown mode '%s'.", mode)
	}
	ctx, release := c.s.untilGone(c.ctx, c.sender)
	defer release()
	removed, err := c.mgr().CleanPool(ctx, caller, mode)
	if err != nil {
		return nil, err
	}
	out := make([]removedEntry, 0, len(removed))
	for _, r := range removed {
		out = append(out, removedEntry{r.Name, r.UsageExclusive})
	}
	return []any{out}, nil
}

// imageMetadata reads the parts of the metadata of the image called name for
// the caller.
func imageMetadata(c *call, name string, parts service.ImageMetadataParts) (service.ImageMetadata, error) {
	caller, err := c.callerOf()
	if err != nil {
		return service.ImageMetadata{}, err
	}
	return c.mgr().GetImageMetadata(c.ctx, caller, name, parts)
}

func getImageHostname(c *call, name string, _ []any) ([]any, error) {
	md, err := imageMetadata(c, name, service.ImageHostname)
	if err != nil {
		return nil, err
	}
	return []any{md.Hostname}, nil
}

func getImageMachineID(c *call, name string, _ []any) ([]any, error) {
	md, err := imageMetadata(c, name, service.ImageMachineID)
	if err != nil {
		return nil, err
	}
	id, err := hex.DecodeString(md.MachineID)
	if err != nil || len(id) != 16 {
		id = []byte{}
	}
	return []any{id}, nil
}

func getImageMachineInfo(c *call, name string, _ []any) ([]any, error) {
	md, err := imageMetadata(c, name, service.ImageMachineInfo)
	if err != nil {
		return nil, err
	}
	return []any{keyValues(md.MachineInfo)}, nil
}

func getImageOSRelease(c *call, name string, _ []any) ([]any, error) {
	md, err := imageMetadata(c, name, service.ImageOSRelease)
	if err != nil {
		return nil, err
	}
	return []any{keyValues(md.OSRelease)}, nil
}

// keyValues turns KEY=VALUE lines into a{ss}; a key given twice keeps its last
// value, as an env file reads.
func keyValues(lines []string) map[string]string {
	out := make(map[string]string, len(lines))
	for _, l := range lines {
		if k, v, ok := strings.Cut(l, "="); ok {
			out[k] = v
		}
	}
	return out
}
