package images

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Disk images: a GPT whose root partition is found by its Discoverable
// Partitions type for this architecture (else its only generic Linux
// partition), or a bare file system without a partition table.

func guid(s string) [16]byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil || len(b) != 16 {
		panic("bad GUID " + s)
	}
	// On disk the first three fields are little-endian.
	var g [16]byte
	copy(g[:], b)
	g[0], g[1], g[2], g[3] = b[3], b[2], b[1], b[0]
	g[4], g[5] = b[5], b[4]
	g[6], g[7] = b[7], b[6]
	return g
}

// rootPartitionTypes are the root partition types this host runs, best first.
var rootPartitionTypes = func() [][16]byte {
	switch runtime.GOARCH {
	case "amd64":
		return [][16]byte{guid("4f68bce3-e8cd-4db1-96e7-fbcaf984b709"), guid("44479540-f297-41b2-9af7-d131d5f0458a")}
	case "386":
		return [][16]byte{guid("44479540-f297-41b2-9af7-d131d5f0458a")}
	case "arm64":
		return [][16]byte{guid("b921b045-1df0-41c3-af44-4c6f280d3fae")}
	case "riscv64":
		return [][16]byte{guid("72ec70a6-cf74-40e6-bd49-4bda08e8f224")}
	}
	return nil
}()

var genericLinuxType = guid("0fc63daf-8483-4772-8e79-3d69d8477de4")

// gptNoAuto is the partition attribute that keeps a partition from being used
// automatically.
const gptNoAuto = 1 << 63

// Bounds on what a partition table may make us read.
const (
	maxGPTEntries   = 1024
	maxGPTEntrySize = 4096
)

type partition struct{ offset, size uint64 }

// findRootPartition locates the root file system in the disk image f of size
// bytes.
func findRootPartition(fd int, size uint64) (partition, error) {
	for _, sector := range []uint64{512, 4096} {
		hdr := make([]byte, 92)
		if n, err := unix.Pread(fd, hdr, int64(sector)); err != nil || n != len(hdr) {
			continue
		}
		if !bytes.Equal(hdr[:8], []byte("EFI PART")) {
			continue
		}
		entriesLBA := binary.LittleEndian.Uint64(hdr[72:])
		count := binary.LittleEndian.Uint32(hdr[80:])
		esize := binary.LittleEndian.Uint32(hdr[84:])
		if count > maxGPTEntries || esize < 128 || esize > maxGPTEntrySize || esize%8 != 0 {
			return partition{}, fmt.Errorf("implausible partition table: %w", unix.EBADMSG)
		}
		table := make([]byte, int(count)*int(esize))
		if n, err := unix.Pread(fd, table, int64(entriesLBA*sector)); err != nil || n != len(table) {
			return partition{}, fmt.Errorf("reading the partition table: %w", unix.EIO)
		}
		var generic []partition
		best, bestRank := partition{}, -1
		for i := 0; i < int(count); i++ {
			e := table[i*int(esize):]
			var typ [16]byte
			copy(typ[:], e[:16])
			first, last := binary.LittleEndian.Uint64(e[32:]), binary.LittleEndian.Uint64(e[40:])
			attrs := binary.LittleEndian.Uint64(e[48:])
			if typ == ([16]byte{}) || last < first || attrs&gptNoAuto != 0 {
				continue
			}
			part := partition{offset: first * sector, size: (last - first + 1) * sector}
			if part.offset+part.size > size {
				continue
			}
			for rank, rt := range rootPartitionTypes {
				if typ == rt && (bestRank < 0 || rank < bestRank) {
					best, bestRank = part, rank
				}
			}
			if typ == genericLinuxType {
				generic = append(generic, part)
			}
		}
		if bestRank >= 0 {
			return best, nil
		}
		if len(generic) == 1 {
			return generic[0], nil
		}
		return partition{}, fmt.Errorf("no root partition: %w", unix.ENXIO)
	}
	// No partition table: the whole image may be one file system.
	return partition{offset: 0, size: size}, nil
}

// probeFilesystem names the file system at offset in fd by its magic.
func probeFilesystem(fd int, offset uint64) (string, error) {
	buf := make([]byte, 0x10048)
	n, _ := unix.Pread(fd, buf, int64(offset))
	buf = buf[:n]
	at := func(off int, magic []byte) bool {
		return len(buf) >= off+len(magic) && bytes.Equal(buf[off:off+len(magic)], magic)
	}
	switch {
	case at(1080, []byte{0x53, 0xef}):
		return "ext4", nil
	case at(0x10040, []byte("_BHRfS_M")):
		return "btrfs", nil
	case at(0, []byte("XFSB")):
		return "xfs", nil
	case at(0, []byte("hsqs")):
		return "squashfs", nil
	case at(1024, []byte{0xe2, 0xe1, 0xf5, 0xe0}):
		return "erofs", nil
	}
	return "", fmt.Errorf("no file system recognised: %w", unix.EMEDIUMTYPE)
}

// attachLoop attaches the byte range part of fd to a free loop device,
// read-only and cleared automatically once nothing uses it any more.
func attachLoop(fd int, part partition) (loopfd int, path string, err error) {
	ctl, err := unix.Open("/dev/loop-control", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, "", err
	}
	defer unix.Close(ctl)
	for range 64 {
		n, err := unix.IoctlRetInt(ctl, unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return -1, "", err
		}
		path = fmt.Sprintf("/dev/loop%d", n)
		lfd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, "", err
		}
		cfg := unix.LoopConfig{Fd: uint32(fd)}
		cfg.Info.Offset = part.offset
		cfg.Info.Sizelimit = part.size
		cfg.Info.Flags = unix.LO_FLAGS_READ_ONLY | unix.LO_FLAGS_AUTOCLEAR
		if err := ioctlPtr(lfd, unix.LOOP_CONFIGURE, unsafe.Pointer(&cfg)); err != nil {
			unix.Close(lfd)
			if errors.Is(err, unix.EBUSY) {
				continue // taken by someone else meanwhile
			}
			return -1, "", err
		}
		return lfd, path, nil
	}
	return -1, "", fmt.Errorf("no free loop device: %w", unix.EBUSY)
}

// mountDetached mounts the file system on dev read-only as a mount attached to
// no namespace at all: only the returned descriptor reaches it, and closing it
// unmounts.
func mountDetached(dev, fstype string) (int, error) {
	fsfd, err := unix.Fsopen(fstype, unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("fsopen %s: %w", fstype, err)
	}
	defer unix.Close(fsfd)
	if err := unix.FsconfigSetString(fsfd, "source", dev); err != nil {
		return -1, err
	}
	if err := unix.FsconfigSetFlag(fsfd, "ro"); err != nil {
		return -1, err
	}
	// A journal needing replay must not stop a read-only look.
	switch fstype {
	case "ext4":
		_ = unix.FsconfigSetFlag(fsfd, "noload")
	case "xfs":
		_ = unix.FsconfigSetFlag(fsfd, "norecovery")
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return -1, fmt.Errorf("mount %s (%s): %w", dev, fstype, err)
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC,
		unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NOEXEC)
	if err != nil {
		return -1, fmt.Errorf("fsmount %s: %w", dev, err)
	}
	return mfd, nil
}

// readDiskMetadata reads the metadata of the raw image or block device at path.
func readDiskMetadata(path string) (Metadata, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOCTTY|unix.O_NONBLOCK, 0)
	if err != nil {
		return Metadata{}, err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return Metadata{}, err
	}
	size := uint64(st.Size)
	if st.Mode&unix.S_IFMT == unix.S_IFBLK {
		if size, err = blockDeviceSize(fd); err != nil {
			return Metadata{}, err
		}
	}
	part, err := findRootPartition(fd, size)
	if err != nil {
		return Metadata{}, err
	}
	fstype, err := probeFilesystem(fd, part.offset)
	if err != nil {
		return Metadata{}, err
	}
	loopfd, dev, err := attachLoop(fd, part)
	if err != nil {
		return Metadata{}, fmt.Errorf("attaching a loop device: %w", err)
	}
	defer unix.Close(loopfd)
	mfd, err := mountDetached(dev, fstype)
	if err != nil {
		return Metadata{}, err
	}
	defer unix.Close(mfd)
	return readMetadataAt(mfd, AllMetadata), nil
}
