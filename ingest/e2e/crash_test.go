package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/pdmstream/pdm/pdmkit/stacktest"
)

// TestBrokerCrash kills Mosquitto (SIGKILL) mid-stream, with the bridge
// away and with it connected. Away is the crash that used to lose
// readings with no error anywhere: the bridge is stopped, the agent goes
// on publishing (the broker acknowledges into the bridge's queue), the
// broker is killed, and Mosquitto 2.0 does not restore a shared
// subscription from its store, so until the bridge is back the agent's
// readings have no subscriber. The agent keeps each reading until the
// bridge confirms Kafka has it and sends again what is not confirmed when
// the bridge subscribes, so Kafka ends with every reading either way.
func TestBrokerCrash(t *testing.T) {
	agentBin, ingestBin := binaries(t)
	for _, away := range []bool{true, false} {
		t.Run(map[bool]string{true: "bridge away", false: "bridge connected"}[away], func(t *testing.T) {
			broker := stacktest.StartMosquitto(t) // before the pipeline: its session cleanup needs the broker
			p := newPipeline(t)
			p.mqttURL = broker.URL()
			bridge := p.start(t, ingestBin, "bridge")
			const n, rate = 1200, 100
			assets := []string{"pump-1", "motor-1"}

			agentDone := make(chan struct{})
			go func() {
				defer close(agentDone)
				runAgent(t, agentBin, p, "pump-1=pump,motor-1=motor", n, 1, rate)
			}()
			start := time.Now()
			time.Sleep(2 * time.Second)
			if away {
				bridge.Stop(t)
				time.Sleep(2 * time.Second) // readings queue for the bridge's session
			}
			broker.Kill()
			broker.Restart()
			if away {
				time.Sleep(2 * time.Second) // the agent is back; no bridge subscribed
				p.start(t, ingestBin, "bridge")
			}
			select {
			case <-agentDone: // it ends once every reading is confirmed
			case <-time.After(2 * time.Minute):
				t.Fatal("the agent did not see every reading confirmed within 2 minutes")
			}
			took := time.Since(start)

			got := readKafka(t, p, n*len(assets))
			seen := map[string]int{}
			for _, r := range got {
				seen[fmt.Sprintf("%s/%d", r.Asset, r.Seq)]++
			}
			dups := 0
			var missing []string
			for _, a := range assets {
				for seq := 1; seq <= n; seq++ {
					k := fmt.Sprintf("%s/%d", a, seq)
					if seen[k] == 0 {
						missing = append(missing, k)
					}
					dups += max(0, seen[k]-1)
				}
			}
			if len(missing) > 0 {
				t.Fatalf("%d of %d readings are missing from Kafka, from %s to %s", len(missing), n*len(assets), missing[0], missing[len(missing)-1])
			}
			t.Logf("%d readings published through a broker crash; Kafka holds all of them (%d duplicates); every reading confirmed %s after the start (%s of readings at %d/s)",
				n*len(assets), dups, took.Round(100*time.Millisecond), time.Duration(n/rate)*time.Second, rate)
		})
	}
}
