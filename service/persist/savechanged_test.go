package persist

import (
	"os"
	"path/filepath"
	"testing"
)

// What Load read back is not rewritten; a changed record is; a missing unit
// link is restored either way.
func TestSaveIfChanged(t *testing.T) {
	d := Dir{Path: t.TempDir()}
	r := full()
	r.Name, r.Unit = "web", "machine-web.scope"
	if err := d.Save(r); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(d.Path, "web")
	before, _ := os.Stat(file)
	recs, errs := d.Load()
	if len(recs) != 1 || len(errs) != 0 {
		t.Fatalf("Load: %d records, %v", len(recs), errs)
	}
	if written, err := d.SaveIfChanged(recs[0].Record, recs[0].Data); err != nil || written {
		t.Errorf("unchanged record: written %v, %v", written, err)
	}
	if after, _ := os.Stat(file); !os.SameFile(before, after) || !after.ModTime().Equal(before.ModTime()) {
		t.Error("an unchanged record's file was replaced")
	}

	os.Remove(filepath.Join(d.Path, "unit:machine-web.scope"))
	if _, err := d.SaveIfChanged(recs[0].Record, recs[0].Data); err != nil {
		t.Fatal(err)
	}
	if target, err := os.Readlink(filepath.Join(d.Path, "unit:machine-web.scope")); err != nil || target != "web" {
		t.Errorf("unit link not restored: %q %v", target, err)
	}

	changed := recs[0].Record
	changed.LeaderPIDFDID++
	if written, err := d.SaveIfChanged(changed, recs[0].Data); err != nil || !written {
		t.Errorf("changed record: written %v, %v", written, err)
	}
	if got, _ := d.Load(); len(got) != 1 || got[0].LeaderPIDFDID != changed.LeaderPIDFDID {
		t.Error("the changed record was not saved")
	}
}
