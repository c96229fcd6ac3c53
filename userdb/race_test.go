//go:build race

package userdb

func init() { raceEnabled = true }
