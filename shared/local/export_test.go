package local

import "time"

// CloseStore closes m's store underneath its running server, as a database
// that went away would: every later token lookup fails. The store_unavailable
// test uses it; Main.Close closes the store again, which is harmless.
func CloseStore(m *Main) error { return m.store.Close() }

// ServerLimits returns the limits of m's server (built by Open), and false
// until Serve runs.
func ServerLimits(m *Main) (readHeader, idle time.Duration, maxHeaderBytes int, ok bool) {
	if !m.ready.Load() {
		return 0, 0, 0, false
	}
	return m.server.ReadHeaderTimeout, m.server.IdleTimeout, m.server.MaxHeaderBytes, true
}
