package topo

// Sockets made in a namespace stay there, whichever thread uses them
// later: these open them through InNS.

import "net"

// Listen opens a listener in the named namespace.
func Listen(ns, network, addr string) (net.Listener, error) {
	var l net.Listener
	err := InNS(ns, func() (err error) {
		l, err = net.Listen(network, addr)
		return err
	})
	return l, err
}

// ListenPacket opens a packet socket (UDP) in the named namespace.
func ListenPacket(ns, network, addr string) (net.PacketConn, error) {
	var c net.PacketConn
	err := InNS(ns, func() (err error) {
		c, err = net.ListenPacket(network, addr)
		return err
	})
	return c, err
}

// Dial connects from the named namespace.
func Dial(ns, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := InNS(ns, func() (err error) {
		c, err = net.Dial(network, addr)
		return err
	})
	return c, err
}
