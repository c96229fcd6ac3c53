package userdb

import (
	"context"
	_ "embed"
	"errors"
	"log/slog"
	"math"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/machined-go/machined/service"
	"github.com/machined-go/machined/varlink"
)

//go:embed idl/io.systemd.UserDatabase.varlink
var userdbIDL string

// ServiceName is what clients must put in "service": the socket's basename.
const ServiceName = "io.systemd.Machine"

// Error names of io.systemd.UserDatabase.
const (
	errNoRecord    = "io.systemd.UserDatabase.NoRecordFound"
	errBadService  = "io.systemd.UserDatabase.BadService"
	errConflicting = "io.systemd.UserDatabase.ConflictingRecordFound"
	errNonMatching = "io.systemd.UserDatabase.NonMatchingRecordFound"
	errNoEnum      = "io.systemd.UserDatabase.EnumerationNotSupported"
)

// NologinShell is the shell of synthesized users, Debian's nologin path.
const NologinShell = "/usr/sbin/nologin"

// NewDispatcher builds the userdb Varlink service: io.systemd.UserDatabase only.
func NewDispatcher(mgr *service.Manager, id varlink.Identity, log *slog.Logger) *varlink.Dispatcher {
	return varlink.NewDispatcher(id, log, &iface{mgr: mgr})
}

// SetSocketXattrs labels the socket inode with the id and name ranges it can
// answer, as v262 does, so newer clients skip it for other lookups.
func SetSocketXattrs(path string) error {
	for k, v := range map[string]string{
		"user.userdb.uid":       "65536-4294967294",
		"user.userdb.gid":       "65536-4294967294",
		"user.userdb.username":  "vu-*",
		"user.userdb.groupname": "vg-*",
	} {
		if err := unix.Setxattr(path, k, []byte(v), 0); err != nil {
			return err
		}
	}
	return nil
}

type iface struct{ mgr *service.Manager }

func (*iface) Name() string        { return "io.systemd.UserDatabase" }
func (*iface) Description() string { return userdbIDL }

func (f *iface) Serve(ctx context.Context, c *varlink.Call) error {
	switch c.Member {
	case "GetUserRecord":
		return f.getRecord(ctx, c, false)
	case "GetGroupRecord":
		return f.getRecord(ctx, c, true)
	case "GetMemberships":
		var user, group, svc string
		if err := varlink.DecodeParams(c.Parameters,
			varlink.StrField("userName", &user, false),
			varlink.StrField("groupName", &group, false),
			varlink.StrField("service", &svc, false),
		); err != nil {
			return replyError(ctx, c, err)
		}
		if svc != ServiceName {
			return c.ReplyError(ctx, errBadService, nil)
		}
		return c.ReplyError(ctx, errNoRecord, nil)
	}
	return c.ReplyMethodNotFound(ctx)
}

// maxFilterNames bounds fuzzyNames and dispositionMask: a lookup names a handful
// of patterns and there are only a few dispositions, and each is matched against
// every answer.
const maxFilterNames = 64

// query is a GetUserRecord/GetGroupRecord request.
type query struct {
	id                  int64
	hasID               bool
	name                string
	fuzzy, dispositions []string
	min, max            int64
	hasMin, hasMax      bool
	uuid, service       string
}

func (f *iface) getRecord(ctx context.Context, c *varlink.Call, group bool) error {
	q := query{max: math.MaxUint32}
	idKey, nameKey, minKey, maxKey := "uid", "userName", "uidMin", "uidMax"
	if group {
		idKey, nameKey, minKey, maxKey = "gid", "groupName", "gidMin", "gidMax"
	}
	if err := varlink.DecodeParams(c.Parameters,
		varlink.IntField(idKey, &q.id, &q.hasID, false, 0, math.MaxUint32),
		varlink.StrField(nameKey, &q.name, false),
		varlink.StrListField("fuzzyNames", &q.fuzzy, maxFilterNames),
		varlink.StrListField("dispositionMask", &q.dispositions, maxFilterNames),
		varlink.IntField(minKey, &q.min, &q.hasMin, false, 0, math.MaxUint32),
		varlink.IntField(maxKey, &q.max, &q.hasMax, false, 0, math.MaxUint32),
		varlink.StrField("uuid", &q.uuid, false),
		varlink.StrField("service", &q.service, false),
	); err != nil {
		return replyError(ctx, c, err)
	}
	if q.service != ServiceName {
		return c.ReplyError(ctx, errBadService, nil)
	}
	if !q.hasID && q.name == "" {
		return c.ReplyError(ctx, errNoEnum, nil)
	}

	var rec service.UserRecord
	var err error
	switch {
	case q.hasID && group:
		rec, err = f.mgr.GroupByGID(uint32(q.id))
	case q.hasID:
		rec, err = f.mgr.UserByUID(uint32(q.id))
	case group:
		rec, err = f.mgr.GroupByName(q.name)
	default:
		rec, err = f.mgr.UserByName(q.name)
	}
	if err != nil {
		return replyError(ctx, c, err)
	}
	if q.hasID && q.name != "" && rec.Name != q.name {
		return c.ReplyError(ctx, errConflicting, nil)
	}
	if !q.matches(rec) {
		return c.ReplyError(ctx, errNonMatching, nil)
	}
	if group {
		return c.Reply(ctx, groupReply{groupRecord{rec.Name, rec.ID, rec.RealName(true), ServiceName, "container"}})
	}
	return c.Reply(ctx, userReply{userRecord{rec.Name, rec.ID, 65534, rec.RealName(false), "/", NologinShell, true, ServiceName, "container"}})
}

// matches applies the filters newer clients send; upstream refuses them with
// InvalidParameter and makes every client filter again on its side.
func (q *query) matches(r service.UserRecord) bool {
	if q.hasMin && int64(r.ID) < q.min || q.hasMax && int64(r.ID) > q.max {
		return false
	}
	if len(q.dispositions) > 0 && !slices.Contains(q.dispositions, "container") {
		return false
	}
	if q.uuid != "" {
		return false // synthesized records have no UUID
	}
	if len(q.fuzzy) > 0 {
		for _, n := range q.fuzzy {
			if n == r.Name || n == r.Machine || n == r.RealName(false) || n == r.RealName(true) {
				return true
			}
		}
		return false
	}
	return true
}

// Record fields in upstream's order.
type userRecord struct {
	UserName      string `json:"userName"`
	UID           uint32 `json:"uid"`
	GID           uint32 `json:"gid"`
	RealName      string `json:"realName"`
	HomeDirectory string `json:"homeDirectory"`
	Shell         string `json:"shell"`
	Locked        bool   `json:"locked"`
	Service       string `json:"service"`
	Disposition   string `json:"disposition"`
}

type groupRecord struct {
	GroupName   string `json:"groupName"`
	GID         uint32 `json:"gid"`
	Description string `json:"description"`
	Service     string `json:"service"`
	Disposition string `json:"disposition"`
}

// The replies encode themselves (varlink.ObjectAppender): one goes out for
// every NSS lookup, and encoding/json's reflection was a good part of its
// cost. The struct tags say what they must match.
type userReply struct {
	Record userRecord `json:"record"`
}

type groupReply struct {
	Record groupRecord `json:"record"`
}

func (r userReply) AppendJSON(b []byte) []byte {
	u := &r.Record
	b = append(b, `{"record":{"userName":`...)
	b = varlink.AppendJSONString(b, u.UserName)
	b = append(b, `,"uid":`...)
	b = varlink.AppendJSONUint(b, uint64(u.UID))
	b = append(b, `,"gid":`...)
	b = varlink.AppendJSONUint(b, uint64(u.GID))
	b = append(b, `,"realName":`...)
	b = varlink.AppendJSONString(b, u.RealName)
	b = append(b, `,"homeDirectory":`...)
	b = varlink.AppendJSONString(b, u.HomeDirectory)
	b = append(b, `,"shell":`...)
	b = varlink.AppendJSONString(b, u.Shell)
	b = append(b, `,"locked":`...)
	b = strconv.AppendBool(b, u.Locked)
	b = append(b, `,"service":`...)
	b = varlink.AppendJSONString(b, u.Service)
	b = append(b, `,"disposition":`...)
	b = varlink.AppendJSONString(b, u.Disposition)
	return append(b, '}', '}')
}

func (r groupReply) AppendJSON(b []byte) []byte {
	g := &r.Record
	b = append(b, `{"record":{"groupName":`...)
	b = varlink.AppendJSONString(b, g.GroupName)
	b = append(b, `,"gid":`...)
	b = varlink.AppendJSONUint(b, uint64(g.GID))
	b = append(b, `,"description":`...)
	b = varlink.AppendJSONString(b, g.Description)
	b = append(b, `,"service":`...)
	b = varlink.AppendJSONString(b, g.Service)
	b = append(b, `,"disposition":`...)
	b = varlink.AppendJSONString(b, g.Disposition)
	return append(b, '}', '}')
}

// replyError is this front end's one translation table.
func replyError(ctx context.Context, c *varlink.Call, err error) error {
	switch {
	case errors.Is(err, service.ErrNoSuchUser), errors.Is(err, service.ErrNoSuchGroup):
		return c.ReplyError(ctx, errNoRecord, nil)
	case isParamError(err):
		return varlink.ReplyParamError(ctx, c, err)
	}
	return c.ReplyError(ctx, varlink.NameSystem, varlink.SystemError(unix.EIO))
}

// isParamError is apart from replyError so that errors.As's target is
// allocated only for the errors it is asked about, not for every NoRecordFound.
func isParamError(err error) bool {
	var pe *varlink.ParamError
	return errors.As(err, &pe) || errors.Is(err, varlink.ErrMalformed)
}
