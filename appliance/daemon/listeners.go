package daemon

import (
	"errors"
	"net"
	"sync/atomic"
	"time"
)

// keptListeners keeps the TCP listeners open across restarts of the daemon (after a
// restore), so that browsers and apps that connect meanwhile wait in the kernel's accept
// queue and are served by the next run, instead of being refused.
type keptListeners struct {
	tcp map[string]*net.TCPListener
}

// listen returns this run's listener on addr, opening the socket on first use.
func (k *keptListeners) listen(addr string) (net.Listener, error) {
	l, ok := k.tcp[addr]
	if !ok {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, err
		}
		l = ln.(*net.TCPListener)
		if k.tcp == nil {
			k.tcp = map[string]*net.TCPListener{}
		}
		k.tcp[addr] = l
	}
	// The previous run's Close left a past deadline on the socket.
	if err := l.SetDeadline(time.Time{}); err != nil {
		return nil, err
	}
	return &runListener{TCPListener: l}, nil
}

// close closes the sockets, when the process is done serving.
func (k *keptListeners) close() {
	for _, l := range k.tcp {
		l.Close()
	}
}

// runListener is one run's view of a kept socket: Close ends Accept (a deadline in the
// past wakes it) and leaves the socket open for the next run.
type runListener struct {
	*net.TCPListener
	closed atomic.Bool
}

func (l *runListener) Accept() (net.Conn, error) {
	c, err := l.TCPListener.Accept()
	if err != nil && l.closed.Load() {
		return nil, net.ErrClosed
	}
	return c, err
}

func (l *runListener) Close() error {
	if l.closed.Swap(true) {
		return nil
	}
	err := l.TCPListener.SetDeadline(time.Unix(1, 0))
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
