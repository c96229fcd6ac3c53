package userdb

import (
	"encoding/json"
	"testing"
)

// The replies encode themselves exactly as encoding/json encodes them from
// their struct tags, which is what clients have always received.
func TestRepliesEncodeAsEncodingJSON(t *testing.T) {
	users := []userReply{
		{userRecord{"vu-bench7-1000", 1001000, 65534, "UID 1000 of Container bench7", "/", NologinShell, true, ServiceName, "container"}},
		{userRecord{"vu-a<b>&c-0", 0, 0, "odd \"name\"\n\xff", "", "", false, "", ""}},
	}
	for _, u := range users {
		want, err := json.Marshal(u)
		if err != nil {
			t.Fatal(err)
		}
		if got := u.AppendJSON(nil); string(got) != string(want) {
			t.Errorf("user: got %s\nencoding/json %s", got, want)
		}
	}
	groups := []groupReply{
		{groupRecord{"vg-bench7-1000", 1001000, "GID 1000 of Container bench7", ServiceName, "container"}},
		{groupRecord{"vg-x\\y-5", 4294967294, "\u2028", "", ""}},
	}
	for _, g := range groups {
		want, err := json.Marshal(g)
		if err != nil {
			t.Fatal(err)
		}
		if got := g.AppendJSON(nil); string(got) != string(want) {
			t.Errorf("group: got %s\nencoding/json %s", got, want)
		}
	}
}
