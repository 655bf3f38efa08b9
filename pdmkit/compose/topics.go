package compose

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"unicode"
)

// Topic is one line of deployments/kafka/topics.txt: a Kafka topic the
// project creates on every stack, with its partition count and configs.
type Topic struct {
	Name       string
	Partitions int
	// Configs are topic-level settings such as cleanup.policy=compact;
	// nil when the line has "-".
	Configs map[string]string
}

// LoadTopics reads a topics file: one topic per line as
// "name partitions configs", configs being "-" or comma-separated
// key=value pairs; blank lines and lines starting with # are ignored.
func LoadTopics(path string) ([]Topic, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var topics []Topic
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		t, err := parseTopic(line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		if seen[t.Name] {
			return nil, fmt.Errorf("%s:%d: topic %s listed twice", path, n, t.Name)
		}
		seen[t.Name] = true
		topics = append(topics, t)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return topics, nil
}

func parseTopic(line string) (Topic, error) {
	fields := strings.Fields(line)
	if len(fields) != 3 {
		return Topic{}, fmt.Errorf("want \"name partitions configs\", got %q", line)
	}
	p, err := strconv.Atoi(fields[1])
	if err != nil || p < 1 {
		return Topic{}, fmt.Errorf("topic %s: partitions %q is not a positive integer", fields[0], fields[1])
	}
	t := Topic{Name: fields[0], Partitions: p}
	if fields[2] != "-" {
		t.Configs = map[string]string{}
		for _, kv := range strings.Split(fields[2], ",") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return Topic{}, fmt.Errorf("topic %s: config %q is not key=value", t.Name, kv)
			}
			t.Configs[k] = v
		}
	}
	return t, nil
}

// PartitionsEnv is the environment variable that overrides the partition
// count of topic name: upper case, every character other than a letter or
// digit replaced by "_", then "_PARTITIONS" (pdm.readings →
// PDM_READINGS_PARTITIONS).
func PartitionsEnv(name string) string {
	return strings.Map(func(r rune) rune {
		if r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r)) {
			return unicode.ToUpper(r)
		}
		return '_'
	}, name) + "_PARTITIONS"
}

// PartitionsFrom returns t's partition count, or the override found by
// getenv (usually os.Getenv) under PartitionsEnv(t.Name).
func (t Topic) PartitionsFrom(getenv func(string) string) (int, error) {
	key := PartitionsEnv(t.Name)
	v := getenv(key)
	if v == "" {
		return t.Partitions, nil
	}
	p, err := strconv.Atoi(v)
	if err != nil || p < 1 {
		return 0, fmt.Errorf("%s=%q is not a positive integer", key, v)
	}
	return p, nil
}
