package franzgo

// Ringlet's own test of KIP-1222's RENEW acknowledgement (ShareFetch/ShareAcknowledge v2),
// written with franz-go's share consumer: franz-go's suite has no test that renews. Run by
// scripts/compat.sh's franz-go suite with KGO_SEEDS, like franz-go's own tests.

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func seeds(t *testing.T) []string {
	s := os.Getenv("KGO_SEEDS")
	if s == "" {
		t.Skip("KGO_SEEDS is not set")
	}
	return strings.Split(s, ",")
}

// renewSupported: ShareAcknowledge v2 is listed (Kafka 4.2's RENEW).
func renewSupported(t *testing.T, cl *kgo.Client) bool {
	resp, err := kmsg.NewPtrApiVersionsRequest().RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatalf("ApiVersions: %v", err)
	}
	for _, k := range resp.ApiKeys {
		if k.ApiKey == 79 && k.MaxVersion >= 2 {
			return true
		}
	}
	return false
}

func setGroupConfigs(t *testing.T, cl *kgo.Client, group string, kv ...string) {
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	res := kmsg.NewIncrementalAlterConfigsRequestResource()
	res.ResourceType = kmsg.ConfigResourceType(32) // GROUP
	res.ResourceName = group
	for i := 0; i+1 < len(kv); i += 2 {
		c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		c.Name = kv[i]
		v := kv[i+1]
		c.Value = &v
		res.Configs = append(res.Configs, c)
	}
	req.Resources = append(req.Resources, res)
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatalf("IncrementalAlterConfigs: %v", err)
	}
	for _, r := range resp.Resources {
		if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
			t.Fatalf("group configs %v: %v (%v)", kv, err, r.ErrorMessage)
		}
	}
}

// A member that keeps renewing its records keeps them well past their 2 s lock: another
// member of the group polling all along gets none of them; once accepted they never come
// back, and the other member does get what is produced after.
func TestRingletShareRenew(t *testing.T) {
	ctx := context.Background()
	admin, err := kgo.NewClient(kgo.SeedBrokers(seeds(t)...))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if !renewSupported(t, admin) {
		t.Skip("no ShareAcknowledge v2 (RENEW is Kafka 4.2's)")
	}
	suffix := time.Now().UnixNano()
	topic, group := fmt.Sprintf("renew-%d", suffix), fmt.Sprintf("renew-group-%d", suffix)
	create := kmsg.NewPtrCreateTopicsRequest()
	ct := kmsg.NewCreateTopicsRequestTopic()
	ct.Topic, ct.NumPartitions, ct.ReplicationFactor = topic, 1, 1
	create.Topics = append(create.Topics, ct)
	if _, err := create.RequestWith(ctx, admin); err != nil {
		t.Fatalf("CreateTopics: %v", err)
	}
	setGroupConfigs(t, admin, group, "share.auto.offset.reset", "earliest",
		"share.record.lock.duration.ms", "2000")
	for i := range 10 {
		if err := admin.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(fmt.Sprint("held", i))}).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}

	member := func() *kgo.Client {
		cl, err := kgo.NewClient(kgo.SeedBrokers(seeds(t)...), kgo.ConsumeTopics(topic), kgo.ShareGroup(group))
		if err != nil {
			t.Fatal(err)
		}
		return cl
	}
	a := member()
	defer a.Close()
	var held []*kgo.Record
	pollCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	for len(held) < 10 && pollCtx.Err() == nil {
		held = append(held, a.PollFetches(pollCtx).Records()...)
	}
	cancel()
	if len(held) != 10 {
		t.Fatalf("member a got %d of 10 records", len(held))
	}

	b := member()
	defer b.Close()
	poll := func(cl *kgo.Client, d time.Duration) []*kgo.Record {
		c, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		return cl.PollFetches(c).Records()
	}
	// Six seconds: three lock durations. Renew every 500 ms; b must see nothing.
	renewUntil := time.Now().Add(6 * time.Second)
	for time.Now().Before(renewUntil) {
		for _, r := range held {
			r.Ack(kgo.AckRenew)
		}
		if err := a.FlushAcks(ctx); err != nil {
			t.Fatalf("flushing renews: %v", err)
		}
		if got := poll(b, 500*time.Millisecond); len(got) > 0 {
			t.Fatalf("member b got %d records member a was renewing (first %q)", len(got), got[0].Value)
		}
	}
	for _, r := range held {
		r.Ack(kgo.AckAccept)
	}
	if err := a.FlushAcks(ctx); err != nil {
		t.Fatalf("flushing accepts: %v", err)
	}
	a.Close()
	if err := admin.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("after")}).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	var got []string
	for time.Now().Before(deadline) && (len(got) == 0 || got[len(got)-1] != "after") {
		for _, r := range poll(b, 500*time.Millisecond) {
			got = append(got, string(r.Value))
		}
	}
	if len(got) != 1 || got[0] != "after" {
		t.Fatalf("member b got %q, want only \"after\"", got)
	}
}
