package depcheck

import "testing"

// The guard itself: internal packages import nothing of the module but each
// other.
func TestInternalImports(t *testing.T) {
	for _, pkg := range []string{"../bufpool", "../copystreams", "../dialas", "../filetest", "../getdents", "../leasetest", "../loglevel", "../quicksys", "../sockio", "../workerpool", "."} {
		Forbid(t, pkg, "/machined/service", "/machined/varlink", "/machined/userdb",
			"/machined/dbusshim", "/machined/units", "/machined/authz", "/machined/cmd")
	}
}
