//go:build race

package busconn

// The race detector allocates beside the code it watches: allocation counts
// are checked without it.
func init() { raceEnabled = true }
