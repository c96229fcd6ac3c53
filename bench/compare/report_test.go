package main

import (
	"encoding/xml"
	"errors"
	"io"
	"math"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestFormatNum(t *testing.T) {
	for _, c := range []struct {
		in   float64
		want string
	}{
		{0, "0"}, {0.0638, "0.0638"}, {0.5, "0.5"}, {1.234, "1.23"}, {12.34, "12.3"},
		{999.4, "999"}, {1234.5, "1,235"}, {45678, "45,678"}, {1234567, "1,234,567"},
		{-2500, "-2,500"}, {math.NaN(), "–"}, {math.Inf(1), "–"},
	} {
		if got := formatNum(c.in); got != c.want {
			t.Errorf("formatNum(%v) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestFormatRatio(t *testing.T) {
	if got := formatRatio(figure(300, nil), figure(100, nil)); got != "3.00×" {
		t.Errorf("got %q", got)
	}
	if got := formatRatio(figure(300, nil), na("no")); got != "–" {
		t.Errorf("ratio against n/a: %q", got)
	}
	if got := formatRatio(cell{Text: "never"}, figure(1, nil)); got != "–" {
		t.Errorf("ratio of text: %q", got)
	}
}

func sampleReport() *report {
	r := &report{Date: "2026-01-01 00:00 UTC", Machine: "test CPU, 2 cores", Daemons: []string{"252", "257", "ours"},
		Versions: []string{"ours: machined 0.1.0"}, Config: "Mode: test.", SVGPath: "chart.svg"}
	r.set(gVarlink, rowPairs(1), "pairs/s", true, "252", na("252 has no Varlink"))
	r.set(gVarlink, rowPairs(1), "pairs/s", true, "257", figure(2000, []float64{1900, 2000, 2100}))
	r.set(gVarlink, rowPairs(1), "pairs/s", true, "ours", figure(4000, nil))
	for i, n := range []int{2, 500, 10000} {
		name := rowUserdb(userdbVariants[0].name, n)
		r.set(gUserdb, name, "lookups/s", true, "252", figure(5000/float64(1+i*i*100), nil))
		r.set(gUserdb, name, "lookups/s", true, "257", figure(9000, nil))
		r.set(gUserdb, name, "lookups/s", true, "ours", figure(40000, nil))
		name = rowUserdb(userdbVariants[1].name, n)
		r.set(gUserdb, name, "lookups/s", true, "252", figure(4000, nil))
		r.set(gUserdb, name, "lookups/s", true, "ours", failed(errors.New("boom\nsecond line")))
	}
	r.set(gLife, rowExit, "ms", false, "252", cell{Text: "never (no systemd)", Note: "no unit signals"})
	r.set(gLife, rowExit, "ms", false, "257", cell{Text: "never (no systemd)", Note: "no unit signals"})
	r.set(gLife, rowExit, "ms", false, "ours", figure(1.5, nil))
	return r
}

func TestMarkdown(t *testing.T) {
	md := sampleReport().markdown()
	if !strings.HasPrefix(md, beginMarker) || !strings.HasSuffix(md, endMarker+"\n") {
		t.Fatalf("section not wrapped in markers:\n%s", md)
	}
	var table []string
	for _, l := range strings.Split(md, "\n") {
		if strings.HasPrefix(l, "|") {
			table = append(table, l)
		}
	}
	if len(table) < 3 {
		t.Fatalf("no table:\n%s", md)
	}
	if table[0] != "| workload | unit | 252 | 257 | ours | ours/252 | ours/257 |" {
		t.Errorf("header %q", table[0])
	}
	cols := strings.Count(table[0], "|")
	for _, l := range table {
		if strings.Count(l, "|") != cols {
			t.Errorf("row with %d separators, header has %d: %q", strings.Count(l, "|"), cols, l)
		}
	}
	for _, want := range []string{
		"| Register+Unregister pairs, 1 connection | pairs/s ↑ | n/a [1] | 2,000 | 4,000 | – | 2.00× |",
		"| leader exit → machine removed | ms ↓ | never (no systemd) [3] | never (no systemd) [3] | 1.50 | – | – |",
		"[1] 252 has no Varlink",
		"[2] boom  \n", // first line of the error only
		"[3] no unit signals",
		"![userdb lookup cost vs machine count, per daemon](chart.svg)",
		"* ours: machined 0.1.0",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("missing %q in\n%s", want, md)
		}
	}
	if strings.Contains(md, "second line") {
		t.Error("multi-line error leaked into the table")
	}
	if strings.Count(md, "\n[3] ") != 1 || strings.Contains(md, "\n[4] ") {
		t.Error("identical notes must share one number")
	}
}

func TestReplaceSection(t *testing.T) {
	sec := beginMarker + " x -->\nNEW\n" + endMarker + "\n"
	doc := "# Title\n\nintro\n\n" + beginMarker + " old -->\nOLD\n" + endMarker + "\n\n## Later\n"
	got := replaceSection(doc, sec)
	want := "# Title\n\nintro\n\n" + sec + "\n## Later\n"
	if got != want {
		t.Errorf("replace:\n%q\nwant\n%q", got, want)
	}
	if again := replaceSection(got, sec); again != got {
		t.Errorf("not idempotent:\n%q", again)
	}
	if got := replaceSection("# Title", sec); got != "# Title\n\n"+sec {
		t.Errorf("append: %q", got)
	}
	if got := replaceSection("", sec); got != sec {
		t.Errorf("empty doc: %q", got)
	}
	// A begin marker without an end marker is left alone; the section is appended.
	broken := "a\n" + beginMarker + " -->\n"
	if got := replaceSection(broken, sec); !strings.HasPrefix(got, broken) || !strings.HasSuffix(got, sec) {
		t.Errorf("unterminated: %q", got)
	}
}

func TestChartSVG(t *testing.T) {
	c := userdbChart(sampleReport(), []int{2, 500, 10000})
	var labels []string
	for _, s := range c.Series {
		labels = append(labels, s.Label)
	}
	// 257 has no by-name figures and ours' failed: those series are left out.
	if strings.Join(labels, ",") != "252 by uid,252 by name,257 by uid,ours by uid" {
		t.Fatalf("series %v", labels)
	}
	for _, s := range c.Series {
		if s.Label == "252 by uid" {
			if len(s.Points) != 3 || s.Points[0].Y != 1e6/5000 {
				t.Errorf("252 by uid points %v", s.Points)
			}
		}
	}
	out := c.svg()
	dec := xml.NewDecoder(strings.NewReader(string(out)))
	polylines, texts := 0, []string{}
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v\n%s", err, out)
		}
		if se, ok := tok.(xml.StartElement); ok {
			seen := map[string]bool{}
			for _, a := range se.Attr {
				if seen[a.Name.Local] {
					t.Errorf("<%s> repeats attribute %s", se.Name.Local, a.Name.Local)
				}
				seen[a.Name.Local] = true
			}
			switch se.Name.Local {
			case "polyline":
				polylines++
			case "text":
				var s string
				dec.DecodeElement(&s, &se)
				texts = append(texts, s)
			}
		}
	}
	if polylines != len(c.Series) {
		t.Errorf("%d polylines for %d series", polylines, len(c.Series))
	}
	joined := strings.Join(texts, "|")
	for _, want := range []string{"252 by uid", "ours by uid", "10,000", "500", "100 µs", "1 ms"} {
		if !strings.Contains(joined, want) {
			t.Errorf("missing text %q in %q", want, joined)
		}
	}
}

func TestLogScale(t *testing.T) {
	lo, hi := logRange([]float64{2, 500, 10000})
	if lo != 0 || hi != 4 {
		t.Fatalf("logRange = %v, %v", lo, hi)
	}
	if scale(1, lo, hi, 400) != 0 || scale(10000, lo, hi, 400) != 400 || scale(100, lo, hi, 400) != 200 {
		t.Error("scale is not logarithmic")
	}
	if lo, hi := logRange(nil); lo != 0 || hi != 1 {
		t.Errorf("empty range %v %v", lo, hi)
	}
	if lo, hi := logRange([]float64{100, 100}); hi <= lo {
		t.Errorf("degenerate range %v %v", lo, hi)
	}
}

func TestUIDScheme(t *testing.T) {
	last := uint64(uidBase(maxUserNSLeaders-1)) + uidRange - 1
	if last >= 1<<32-1 {
		t.Errorf("last mapped id %d reaches 2^32-1", last)
	}
	if next := uint64(uidRange) * uint64(10+maxUserNSLeaders); next+uidRange-1 < 1<<32-1 {
		t.Errorf("maxUserNSLeaders %d is not the limit", maxUserNSLeaders)
	}
	if uidBase(9999)+uidRange-1 != 656015359 {
		t.Errorf("10,000 machines end at %d", uidBase(9999)+uidRange-1)
	}
	uid, name := sampleUser(7)
	if uid != 65536*17+1000 || name != "vu-bench7-1000" {
		t.Errorf("sampleUser(7) = %d %q", uid, name)
	}
}

func TestFlags(t *testing.T) {
	c, err := parseFlags([]string{"-quick"})
	if err != nil {
		t.Fatal(err)
	}
	if c.doc != "" || c.svg != "" || c.maxLevel() != 500 || c.dur != 300*time.Millisecond {
		t.Errorf("quick: %+v", c)
	}
	// The pair phase registers its own machines: its sizes are not levels of
	// the per-daemon turns.
	if got := c.levels(); !slices.Equal(got, []int{2, 100, 500}) {
		t.Errorf("quick levels %v", got)
	}
	if c.churnRounds != 10 || c.churnMachs != 1000 || !slices.Equal(c.pairSizes, []int{10, 500}) {
		t.Errorf("quick churn and pair sizes: %+v", c)
	}
	if c, err := parseFlags([]string{"-go-pair-sizes", "7,3"}); err != nil || !slices.Equal(c.pairSizes, []int{3, 7}) {
		t.Errorf("-go-pair-sizes no longer sets the pair sizes: %v %v", c.pairSizes, err)
	}
	if _, err := parseFlags([]string{"-pair-sizes", "70000"}); err == nil {
		t.Error("-pair-sizes beyond the uid scheme accepted")
	}
	c, err = parseFlags([]string{"-quick", "-doc", "d.md", "-userdb-sizes", "3,1"})
	if err != nil || c.doc != "d.md" || c.userdbSizes[0] != 1 {
		t.Errorf("explicit flags lost under -quick: %+v %v", c, err)
	}
	c, err = parseFlags(nil)
	if err != nil || c.maxLevel() != 10000 || c.doc == "" || len(c.daemons) != 3 {
		t.Errorf("defaults: %+v %v", c, err)
	}
	for _, bad := range [][]string{{"-daemons", "253"}, {"-list-sizes", "0"}, {"-userdb-sizes", "70000"}, {"x"},
		{"-churn-rounds", "-1"}, {"-churn-machines", "0"}, {"-churn-machines", "5000"}, {"-go-pair-sizes", "0"}, {"-pair-sizes", "0"}} {
		if _, err := parseFlags(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// The lean client must split replies at NULs whatever the read boundaries, and
// grow its buffer for a message larger than it.
func TestVconnSplitsReplies(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	big := strings.Repeat("x", 600<<10)
	stream := `{"parameters":{"name":"a"},"continues":true}` + "\x00" +
		`{"parameters":{"name":"` + big + `"},"continues":true}` + "\x00" +
		`{"parameters":{"name":"c"}}` + "\x00" +
		`{"error":"io.systemd.Machine.NoSuchMachine","parameters":{}}` + "\x00"
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 4096)
		c.Read(buf) // the List request
		for i := 0; i < len(stream); {
			n := min(1+i%7919, len(stream)-i)
			c.Write([]byte(stream[i : i+n]))
			i += n
		}
		c.Read(buf) // the second request
	}()
	v, err := vdial(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	n, err := v.callMore(listAllReq)
	if err != nil || n != 3 {
		t.Fatalf("callMore = %d, %v; want 3 replies", n, err)
	}
	_, err = v.call(listNameReq("nope"))
	var ve *varlinkError
	if !errors.As(err, &ve) || ve.name != "io.systemd.Machine.NoSuchMachine" {
		t.Fatalf("error reply: %v", err)
	}
}

func TestMedian(t *testing.T) {
	if median([]float64{3, 1, 2}) != 2 || median([]float64{4, 1, 3, 2}) != 2.5 || median(nil) != 0 {
		t.Error("median")
	}
}
