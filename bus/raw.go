package bus

import "github.com/nats-io/nats.go"

// NATS is the underlying connection, for the node-to-node requests of
// package cluster (heartbeats, drain, media commands), which share it.
func (c *Conn) NATS() *nats.Conn { return c.nc }
