// Package tests holds the black-box integration tests: they build bin/machined,
// start it on a temporary runtime directory and drive it with the real clients
// (varlinkctl 257 from tests/setup/install-deps.sh) and with a Go Varlink client.
// Tests that need root say so in their skip message; CI runs them as root.
package tests
