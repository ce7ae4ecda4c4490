package loadgen

import (
	"testing"
)

const tracesSample = `File: dendrite
Type: cpu
Duration: 8s, Total samples = 40ms (0.5%)
-----------+-------------------------------------------------------
      10ms   modernc.org/sqlite/lib._yy_reduce
             modernc.org/sqlite/lib._sqlite3RunParser
             modernc.org/sqlite.(*stmt).query
             github.com/element-hq/dendrite/syncapi/sync.(*RequestPool).OnIncomingSyncRequest
             net/http.(*conn).serve
-----------+-------------------------------------------------------
      type:  consumer
    stream:  DendriteOutputRoomEvent
      20ms   internal/runtime/syscall/linux.Syscall6
             syscall.Fsync
             github.com/nats-io/nats-server/v2/server.(*msgBlock).writeMsgRecord
-----------+-------------------------------------------------------
      10ms   runtime.scanObject
             runtime.gcDrain
             runtime.gcBgMarkWorker
`

func TestSummarizeTraces(t *testing.T) {
	s, err := summarizeTraces(tracesSample)
	if err != nil {
		t.Fatal(err)
	}
	if s.Seconds != 0.04 {
		t.Errorf("sampled %v s, want 0.04", s.Seconds)
	}
	want := map[string]float64{"JetStream (embedded NATS)": 50, "sync API: /sync long polls": 25, "Go GC (background)": 25}
	for _, sh := range s.Where {
		if want[sh.Name] != sh.Percent {
			t.Errorf("where %q = %v%%, want %v%%", sh.Name, sh.Percent, want[sh.Name])
		}
	}
	wantWhat := map[string]float64{"fsync": 50, "SQLite: parsing SQL (statement prepare)": 25, "Go GC and allocation": 25}
	for _, sh := range s.What {
		if wantWhat[sh.Name] != sh.Percent {
			t.Errorf("what %q = %v%%, want %v%%", sh.Name, sh.Percent, wantWhat[sh.Name])
		}
	}
}
