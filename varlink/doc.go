// Package varlink is the Varlink transport every machined socket uses: the
// accept loop with its connection limits and reserve (server.go, internal/workerpool),
// the accept loop that answers one-call connections itself on the userdb
// socket (acceptloop.go), framing with the message, fd and buffered-input bounds (conn.go,
// inputbudget.go), peer credentials (peer.go), socket activation and sd_notify
// (activation.go, notify.go, listen.go), and the dispatcher: the one parse of
// each message (envelope.go, members.go), org.varlink.service, routing to an
// Interface (dispatch.go), the Call a handler answers (call.go), the strict
// parameter decoder (params.go) and the error names every front end shares
// (errors.go).
//
// It knows no interface of machined's: the front ends (varlink/machine,
// userdb) implement Interface. It must not import the service package, any
// front end, godbus or a back end; TestTransportImports enforces that.
// varlink/go's server side is not used: it would parse every message a second
// time. Its types spell the standard interface's error payloads.
package varlink
