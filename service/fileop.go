package service

import "context"

// fileOps are the operations admitFileOp admits: the "verb" polkit is told,
// and how a machine other than a container is refused.
var fileOps = map[ContainerOp]struct{ verb, refusal string }{
	OpCopy:      {"copy", "copying files is only supported on container machines."},
	OpBindMount: {"bind", "bind mounting is only supported on container machines."},
}

// admitFileOp is what a copy and a bind mount check before they start: the
// machine sel names, which must be a container, the two paths, *dst defaulting
// to src, and the caller's right to op on that machine.
func (m *Manager) admitFileOp(ctx context.Context, c Caller, sel Selector, op ContainerOp, src string, dst *string, normalized bool) (*machine, MachineInfo, error) {
	f := fileOps[op]
	mc, mi, err := m.selectMachine(c, sel)
	if err != nil {
		return nil, mi, err
	}
	if mi.Class != ClassContainer {
		return nil, mi, errNotSupportedf("%s", f.refusal)
	}
	if *dst == "" {
		*dst = src
	}
	if err := checkOperationPaths(src, *dst, normalized); err != nil {
		return nil, mi, err
	}
	details := func() map[string]string {
		return map[string]string{"name": mi.Name, "verb": f.verb, "src": src, "dest": *dst}
	}
	if err := m.authorizeContainerOp(ctx, c, mc, op, details); err != nil {
		return nil, mi, err
	}
	return mc, mi, nil
}

func checkOperationPaths(src, dst string, normalized bool) error {
	rule := "absolute"
	if normalized {
		rule = "absolute and normalized"
	}
	if !validOperationPath(src, normalized) {
		return invalidArg("source", "source path must be %s.", rule)
	}
	if !validOperationPath(dst, normalized) {
		return invalidArg("destination", "destination path must be %s.", rule)
	}
	return nil
}
