package images

import (
	"encoding/binary"
	"errors"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The btrfs ioctls the pool needs; x/sys does not define them. Numbers and
// layouts follow linux/btrfs.h.

const btrfsIoctlMagic = 0x94

func ioc(dir, nr, size uintptr) uintptr {
	return dir<<30 | size<<16 | btrfsIoctlMagic<<8 | nr
}

const (
	iocWrite = 1
	iocRead  = 2
)

// btrfsVolArgsV2 is struct btrfs_ioctl_vol_args_v2 (snapshot creation).
type btrfsVolArgsV2 struct {
	Fd      int64
	Transid uint64
	Flags   uint64
	Unused  [4]uint64
	Name    [4040]byte
}

// btrfsVolArgs is struct btrfs_ioctl_vol_args (subvolume creation and deletion).
type btrfsVolArgs struct {
	Fd   int64
	Name [4088]byte
}

type btrfsTimespec struct {
	Sec  uint64
	Nsec uint32
	_    uint32
}

// btrfsSubvolInfo is struct btrfs_ioctl_get_subvol_info_args.
type btrfsSubvolInfo struct {
	TreeID       uint64
	Name         [256]byte
	ParentID     uint64
	DirID        uint64
	Generation   uint64
	Flags        uint64
	UUID         [16]byte
	ParentUUID   [16]byte
	ReceivedUUID [16]byte
	Ctransid     uint64
	Otransid     uint64
	Stransid     uint64
	Rtransid     uint64
	Ctime        btrfsTimespec
	Otime        btrfsTimespec
	Stime        btrfsTimespec
	Rtime        btrfsTimespec
	Reserved     [8]uint64
}

// btrfsInoLookupArgs is struct btrfs_ioctl_ino_lookup_args.
type btrfsInoLookupArgs struct {
	TreeID   uint64
	ObjectID uint64
	Name     [4080]byte
}

type btrfsQuotaCtlArgs struct {
	Cmd    uint64
	Status uint64
}

type btrfsQgroupAssignArgs struct {
	Assign uint64
	Src    uint64
	Dst    uint64
}

type btrfsQgroupCreateArgs struct {
	Create   uint64
	QgroupID uint64
}

type btrfsQgroupLimitArgs struct {
	QgroupID uint64
	Flags    uint64
	MaxRfer  uint64
	MaxExcl  uint64
	RsvRfer  uint64
	RsvExcl  uint64
}

type btrfsQuotaRescanArgs struct {
	Flags    uint64
	Progress uint64
	Reserved [6]uint64
}

// btrfsSearchKey is struct btrfs_ioctl_search_key; btrfsSearchArgs adds the
// result buffer (struct btrfs_ioctl_search_args, 4 KiB in all).
type btrfsSearchKey struct {
	TreeID      uint64
	MinObjectID uint64
	MaxObjectID uint64
	MinOffset   uint64
	MaxOffset   uint64
	MinTransid  uint64
	MaxTransid  uint64
	MinType     uint32
	MaxType     uint32
	NrItems     uint32
	_           uint32
	_           [4]uint64
}

type btrfsSearchArgs struct {
	Key btrfsSearchKey
	Buf [4096 - 104]byte
}

var (
	btrfsIocSnapDestroy     = ioc(iocWrite, 15, unsafe.Sizeof(btrfsVolArgs{}))
	btrfsIocSubvolCreate    = ioc(iocWrite, 14, unsafe.Sizeof(btrfsVolArgs{}))
	btrfsIocTreeSearch      = ioc(iocRead|iocWrite, 17, unsafe.Sizeof(btrfsSearchArgs{}))
	btrfsIocInoLookup       = ioc(iocRead|iocWrite, 18, unsafe.Sizeof(btrfsInoLookupArgs{}))
	btrfsIocSnapCreateV2    = ioc(iocWrite, 23, unsafe.Sizeof(btrfsVolArgsV2{}))
	btrfsIocSubvolGetflags  = ioc(iocRead, 25, 8)
	btrfsIocSubvolSetflags  = ioc(iocWrite, 26, 8)
	btrfsIocQuotaCtl        = ioc(iocRead|iocWrite, 40, unsafe.Sizeof(btrfsQuotaCtlArgs{}))
	btrfsIocQgroupAssign    = ioc(iocWrite, 41, unsafe.Sizeof(btrfsQgroupAssignArgs{}))
	btrfsIocQgroupCreate    = ioc(iocWrite, 42, unsafe.Sizeof(btrfsQgroupCreateArgs{}))
	btrfsIocQgroupLimit     = ioc(iocRead, 43, unsafe.Sizeof(btrfsQgroupLimitArgs{}))
	btrfsIocQuotaRescan     = ioc(iocWrite, 44, unsafe.Sizeof(btrfsQuotaRescanArgs{}))
	btrfsIocQuotaRescanStat = ioc(iocRead, 45, unsafe.Sizeof(btrfsQuotaRescanArgs{}))
	btrfsIocGetSubvolInfo   = ioc(iocRead, 60, unsafe.Sizeof(btrfsSubvolInfo{}))
)

const (
	btrfsSubvolRdonly       = 1 << 1 // subvolume flag (GETFLAGS/SETFLAGS, snapshot creation)
	btrfsRootSubvolRdonly   = 1 << 0 // root item flag (GET_SUBVOL_INFO)
	btrfsFirstFreeObjectID  = 256    // inode number of every subvolume's root directory
	btrfsRootTreeObjectID   = 1
	btrfsRootRefKey         = 156
	btrfsQuotaTreeObjectID  = 8
	btrfsQgroupInfoKey      = 242
	btrfsQgroupLimitKey     = 244
	btrfsQgroupRelationKey  = 246
	btrfsQgroupLimitMaxRfer = 1 << 0
	btrfsQgroupLimitMaxExcl = 1 << 1
	btrfsQuotaCtlEnable     = 1
	qgroupLevelShift        = 48
)

func ioctlPtr(fd int, req uintptr, arg unsafe.Pointer) error {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(arg))
	if errno != 0 {
		return errno
	}
	return nil
}

// onBtrfs reports whether fd lives on btrfs.
func onBtrfs(fd int) bool {
	var sfs unix.Statfs_t
	return unix.Fstatfs(fd, &sfs) == nil && uint32(sfs.Type) == unix.BTRFS_SUPER_MAGIC
}

// isSubvolume reports whether the directory fd (stat st) is a btrfs subvolume's root.
func isSubvolume(fd int, st *unix.Stat_t) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFDIR && st.Ino == btrfsFirstFreeObjectID && onBtrfs(fd)
}

func subvolInfo(fd int) (btrfsSubvolInfo, error) {
	var info btrfsSubvolInfo
	err := ioctlPtr(fd, btrfsIocGetSubvolInfo, unsafe.Pointer(&info))
	return info, err
}

func setSubvolReadOnly(fd int, ro bool) error {
	var flags uint64
	if err := ioctlPtr(fd, btrfsIocSubvolGetflags, unsafe.Pointer(&flags)); err != nil {
		return err
	}
	nflags := flags &^ btrfsSubvolRdonly
	if ro {
		nflags |= btrfsSubvolRdonly
	}
	if nflags == flags {
		return nil
	}
	return ioctlPtr(fd, btrfsIocSubvolSetflags, unsafe.Pointer(&nflags))
}

func volName(dst []byte, name string) error {
	if len(name) >= len(dst) {
		return unix.ENAMETOOLONG
	}
	copy(dst, name)
	return nil
}

// createSubvolume makes the subvolume name in the directory dirfd.
func createSubvolume(dirfd int, name string) error {
	var args btrfsVolArgs
	if err := volName(args.Name[:], name); err != nil {
		return err
	}
	return ioctlPtr(dirfd, btrfsIocSubvolCreate, unsafe.Pointer(&args))
}

// snapshotSubvolume snapshots the subvolume srcfd as name in the directory dirfd.
func snapshotSubvolume(srcfd, dirfd int, name string, readOnly bool) error {
	var args btrfsVolArgsV2
	args.Fd = int64(srcfd)
	if readOnly {
		args.Flags = btrfsSubvolRdonly
	}
	if err := volName(args.Name[:], name); err != nil {
		return err
	}
	return ioctlPtr(dirfd, btrfsIocSnapCreateV2, unsafe.Pointer(&args))
}

// destroySubvolume deletes the subvolume name in the directory dirfd, contents
// included; ENOTEMPTY while it holds other subvolumes.
func destroySubvolume(dirfd int, name string) error {
	var args btrfsVolArgs
	if err := volName(args.Name[:], name); err != nil {
		return err
	}
	return ioctlPtr(dirfd, btrfsIocSnapDestroy, unsafe.Pointer(&args))
}

// quotaInfo is one qgroup's usage and limits; math.MaxUint64 when unknown or
// unlimited.
type quotaInfo struct {
	Referenced, Exclusive, ReferencedMax, ExclusiveMax uint64
}

// searchQuotaTree searches the quota tree (see searchTree).
func searchQuotaTree(fd int, key btrfsSearchKey, f func(objectID, offset uint64, typ uint32, body []byte)) error {
	key.TreeID = btrfsQuotaTreeObjectID
	return searchTree(fd, key, f)
}

// searchTree runs a tree search over key.TreeID, as many calls as it takes, and
// calls f for each item found.
func searchTree(fd int, key btrfsSearchKey, f func(objectID, offset uint64, typ uint32, body []byte)) error {
	key.MaxTransid = ^uint64(0)
	for {
		var args btrfsSearchArgs
		args.Key = key
		args.Key.NrItems = 256
		if err := ioctlPtr(fd, btrfsIocTreeSearch, unsafe.Pointer(&args)); err != nil {
			return err
		}
		n := args.Key.NrItems
		if n == 0 {
			return nil
		}
		buf := args.Buf[:]
		var lastObj, lastOff uint64
		var lastType uint32
		for i := uint32(0); i < n; i++ {
			if len(buf) < 32 {
				return unix.EIO
			}
			obj := binary.LittleEndian.Uint64(buf[8:])
			off := binary.LittleEndian.Uint64(buf[16:])
			typ := binary.LittleEndian.Uint32(buf[24:])
			l := binary.LittleEndian.Uint32(buf[28:])
			if uint64(len(buf)-32) < uint64(l) {
				return unix.EIO
			}
			f(obj, off, typ, buf[32:32+l])
			buf = buf[32+l:]
			lastObj, lastOff, lastType = obj, off, typ
		}
		// Continue after the last item returned, in (objectid, type, offset) order.
		key.MinObjectID, key.MinType, key.MinOffset = lastObj, lastType, lastOff
		if key.MinOffset < ^uint64(0) {
			key.MinOffset++
		} else if key.MinType < 255 {
			key.MinType, key.MinOffset = key.MinType+1, 0
		} else if key.MinObjectID < ^uint64(0) {
			key.MinObjectID, key.MinType, key.MinOffset = key.MinObjectID+1, 0, 0
		} else {
			return nil
		}
		if key.MinObjectID > key.MaxObjectID ||
			key.MinObjectID == key.MaxObjectID && key.MinType > key.MaxType {
			return nil
		}
	}
}

// qgroupQuota reads the usage and limits of the qgroup id.
func qgroupQuota(fd int, id uint64) (quotaInfo, error) {
	q := quotaInfo{^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0)}
	foundInfo, foundLimit := false, false
	err := searchQuotaTree(fd, btrfsSearchKey{
		MinObjectID: 0, MaxObjectID: 0,
		MinType: btrfsQgroupInfoKey, MaxType: btrfsQgroupLimitKey,
		MinOffset: id, MaxOffset: id,
	}, func(obj, off uint64, typ uint32, body []byte) {
		if obj != 0 || off != id {
			return
		}
		switch {
		case typ == btrfsQgroupInfoKey && len(body) >= 40:
			// generation, rfer, rfer_cmpr, excl, excl_cmpr
			q.Referenced = binary.LittleEndian.Uint64(body[8:])
			q.Exclusive = binary.LittleEndian.Uint64(body[24:])
			foundInfo = true
		case typ == btrfsQgroupLimitKey && len(body) >= 24:
			// flags, max_rfer, max_excl, rsv_rfer, rsv_excl
			flags := binary.LittleEndian.Uint64(body[0:])
			if flags&btrfsQgroupLimitMaxRfer != 0 {
				q.ReferencedMax = binary.LittleEndian.Uint64(body[8:])
			}
			if flags&btrfsQgroupLimitMaxExcl != 0 {
				q.ExclusiveMax = binary.LittleEndian.Uint64(body[16:])
			}
			foundLimit = true
		}
	})
	if err != nil {
		return q, err
	}
	if !foundInfo && !foundLimit {
		return q, unix.ENODATA
	}
	return q, nil
}

// qgroupParents lists the qgroups the qgroup id is a member of.
func qgroupParents(fd int, id uint64) ([]uint64, error) {
	var parents []uint64
	err := searchQuotaTree(fd, btrfsSearchKey{
		MinObjectID: id, MaxObjectID: id,
		MinType: btrfsQgroupRelationKey, MaxType: btrfsQgroupRelationKey,
		MinOffset: 0, MaxOffset: ^uint64(0),
	}, func(obj, off uint64, typ uint32, _ []byte) {
		// Relations are stored both ways; a parent has a higher level, hence a
		// larger id.
		if obj == id && typ == btrfsQgroupRelationKey && off > obj {
			parents = append(parents, off)
		}
	})
	return parents, err
}

// subtreeQgroup returns the qgroup that accounts the subvolume subvol and
// everything below it: the higher-level qgroup with the subvolume's id, when
// one was set up, else the subvolume's own.
func subtreeQgroup(fd int, subvol uint64) (uint64, error) {
	parents, err := qgroupParents(fd, subvol)
	if err != nil {
		return 0, err
	}
	found := uint64(0)
	for _, p := range parents {
		if p&(1<<qgroupLevelShift-1) == subvol && (found == 0 || p < found) {
			found = p
		}
	}
	if found == 0 {
		return subvol, nil
	}
	return found, nil
}

func quotaRescanOngoing(fd int) (bool, error) {
	var args btrfsQuotaRescanArgs
	if err := ioctlPtr(fd, btrfsIocQuotaRescanStat, unsafe.Pointer(&args)); err != nil {
		return false, err
	}
	return args.Flags != 0, nil
}

func enableQuota(fd int) error {
	args := btrfsQuotaCtlArgs{Cmd: btrfsQuotaCtlEnable}
	return ioctlPtr(fd, btrfsIocQuotaCtl, unsafe.Pointer(&args))
}

func qgroupCreate(fd int, id uint64, create bool) error {
	args := btrfsQgroupCreateArgs{QgroupID: id}
	if create {
		args.Create = 1
	}
	return ioctlPtr(fd, btrfsIocQgroupCreate, unsafe.Pointer(&args))
}

func qgroupAssign(fd int, child, parent uint64, assign bool) error {
	args := btrfsQgroupAssignArgs{Src: child, Dst: parent}
	if assign {
		args.Assign = 1
	}
	r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), btrfsIocQgroupAssign, uintptr(unsafe.Pointer(&args)))
	if errno != 0 {
		return errno
	}
	if r > 0 {
		// The kernel marked the accounting inconsistent: it is only right again
		// after a rescan.
		var scan btrfsQuotaRescanArgs
		_ = ioctlPtr(fd, btrfsIocQuotaRescan, unsafe.Pointer(&scan))
	}
	return nil
}

// qgroupSetLimit limits the referenced bytes of the qgroup id; math.MaxUint64
// lifts the limit.
func qgroupSetLimit(fd int, id, maxReferenced uint64) error {
	// The kernel takes math.MaxUint64 as "clear the limit".
	args := btrfsQgroupLimitArgs{QgroupID: id, Flags: btrfsQgroupLimitMaxRfer, MaxRfer: maxReferenced}
	return ioctlPtr(fd, btrfsIocQgroupLimit, unsafe.Pointer(&args))
}

// isNotSupported reports the errors that mean "btrfs (or its quota) is not here".
func isNotSupported(err error) bool {
	return errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS)
}

func unsafePointer[T any](p *T) unsafe.Pointer { return unsafe.Pointer(p) }

// qgroupRelations lists the qgroups related to id, parents and children alike.
func qgroupRelations(fd int, id uint64) ([]uint64, error) {
	var rel []uint64
	err := searchQuotaTree(fd, btrfsSearchKey{
		MinObjectID: id, MaxObjectID: id,
		MinType: btrfsQgroupRelationKey, MaxType: btrfsQgroupRelationKey,
		MinOffset: 0, MaxOffset: ^uint64(0),
	}, func(obj, off uint64, typ uint32, _ []byte) {
		if obj == id && typ == btrfsQgroupRelationKey {
			rel = append(rel, off)
		}
	})
	return rel, err
}

// childSubvolume is a subvolume nested directly in another, by its path
// relative to the parent subvolume's root.
type childSubvolume struct {
	id   uint64
	path string
}

// childSubvolumes lists the subvolumes nested directly in the subvolume id
// (fd is any file on the same file system).
func childSubvolumes(fd int, id uint64) ([]childSubvolume, error) {
	type ref struct {
		child, dirid uint64
		name         string
	}
	var refs []ref
	err := searchTree(fd, btrfsSearchKey{
		TreeID:      btrfsRootTreeObjectID,
		MinObjectID: id, MaxObjectID: id,
		MinType: btrfsRootRefKey, MaxType: btrfsRootRefKey,
		MinOffset: 0, MaxOffset: ^uint64(0),
	}, func(obj, off uint64, typ uint32, body []byte) {
		// struct btrfs_root_ref: dirid, sequence, name_len, then the name.
		if obj != id || typ != btrfsRootRefKey || len(body) < 18 {
			return
		}
		n := int(binary.LittleEndian.Uint16(body[16:]))
		if len(body) < 18+n {
			return
		}
		refs = append(refs, ref{child: off, dirid: binary.LittleEndian.Uint64(body[0:]), name: string(body[18 : 18+n])})
	})
	if err != nil {
		return nil, err
	}
	out := make([]childSubvolume, 0, len(refs))
	for _, r := range refs {
		args := btrfsInoLookupArgs{TreeID: id, ObjectID: r.dirid}
		if err := ioctlPtr(fd, btrfsIocInoLookup, unsafe.Pointer(&args)); err != nil {
			return nil, err
		}
		dir := string(args.Name[:bytesIndexNul(args.Name[:])])
		out = append(out, childSubvolume{id: r.child, path: dir + r.name})
	}
	return out, nil
}

func bytesIndexNul(b []byte) int {
	for i, c := range b {
		if c == 0 {
			return i
		}
	}
	return len(b)
}
