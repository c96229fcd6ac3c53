package main

import (
	"errors"
	"fmt"

	"github.com/machined-go/machined/varlink"
)

// checkLimits refuses flag combinations that would leave some clients no way
// in at all.
func checkLimits(l varlink.Limits) error {
	switch {
	case l.MaxConnections < 1:
		return errors.New("--max-connections must be at least 1")
	case l.MaxConnectionsPerUID < 1:
		return errors.New("--max-connections-per-uid must be at least 1")
	case l.ReservedConnections < 0 || l.ReservedConnections >= l.MaxConnections:
		return errors.New("--reserved-connections must be at least 0 and below --max-connections")
	case l.MaxPendingInput < l.MinPendingInput():
		return fmt.Errorf("--max-pending-input must be at least %d: one maximal message for an unprivileged user and one for root", l.MinPendingInput())
	}
	return nil
}
