package nsenter

import "errors"

// The errors a caller tells apart; the ones returned wrap them.
var (
	// ErrNoSuchUser: the user is not in the container's /etc/passwd (or could
	// not be: a name no account file can hold).
	ErrNoSuchUser = errors.New("no such user in the container")
	// ErrNoProgram: the program to run (the shell asked for, or a login
	// program) is not in the container.
	ErrNoProgram = errors.New("no such program in the container")
	// ErrInvalid: a field of the request is malformed (a relative path, an
	// environment entry that is not KEY=VALUE, no terminal).
	ErrInvalid = errors.New("invalid request")
)
