// Package compose reads the project's docker-compose.yml into typed structs
// so tests can hold it to the same contracts as the local stack: image
// families, published ports, the PDM_* variables each service reads, the
// Dockerfiles it builds and the Kafka topics it creates
// (deployments/kafka/topics.txt, see LoadTopics).
//
// It understands the subset of the Compose specification the project uses,
// in both of the spec's spellings where there are two (environment as a map
// or a KEY=VALUE list, depends_on as a list or a map with conditions,
// command as a string or a list, ports in short or long syntax). Variables
// (${VAR}, ${VAR:-default}, $$) are interpolated before parsing, as
// `docker compose` does.
package compose

import (
	"fmt"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// File is a parsed docker-compose.yml.
type File struct {
	Name     string             `yaml:"name"`
	Services map[string]Service `yaml:"services"`
	Volumes  map[string]any     `yaml:"volumes"`
}

// Service is one entry under services:.
type Service struct {
	Image       string       `yaml:"image"`
	Build       *Build       `yaml:"build"`
	Command     Command      `yaml:"command"`
	Entrypoint  Command      `yaml:"entrypoint"`
	Environment Environment  `yaml:"environment"`
	Ports       []Port       `yaml:"ports"`
	Healthcheck *Healthcheck `yaml:"healthcheck"`
	DependsOn   DependsOn    `yaml:"depends_on"`
	Volumes     []string     `yaml:"volumes"`
	Restart     string       `yaml:"restart"`
	User        string       `yaml:"user"`
}

// Build is a service's build section; the short form (a context path) sets
// Context only.
type Build struct {
	Context    string      `yaml:"context"`
	Dockerfile string      `yaml:"dockerfile"`
	Args       Environment `yaml:"args"`
	Target     string      `yaml:"target"`
}

// UnmarshalYAML accepts `build: path` and `build: {context: ...}`.
func (b *Build) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		b.Context = n.Value
		return nil
	}
	type plain Build
	return n.Decode((*plain)(b))
}

// DockerfilePath is the Dockerfile relative to the compose file's folder:
// Context joined with Dockerfile, "Dockerfile" when unset.
func (b *Build) DockerfilePath() string {
	ctx := b.Context
	if ctx == "" {
		ctx = "."
	}
	df := b.Dockerfile
	if df == "" {
		df = "Dockerfile"
	}
	return strings.TrimPrefix(ctx+"/"+df, "./")
}

// Command is a command, entrypoint or healthcheck test. The list form is
// kept as it is; the string form is kept as a single element, unsplit, since
// Compose hands it to a shell-like splitter whose rules are not needed here.
type Command []string

// UnmarshalYAML accepts a string or a list of strings.
func (c *Command) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*c = Command{n.Value}
		return nil
	}
	var l []string
	if err := n.Decode(&l); err != nil {
		return err
	}
	*c = l
	return nil
}

// String joins the command with spaces, for matching and messages.
func (c Command) String() string { return strings.Join(c, " ") }

// Environment maps variable names to values. A name listed without a value
// (taken from the host's environment by Compose) maps to "".
type Environment map[string]string

// UnmarshalYAML accepts `{KEY: value}` (merge keys included) and
// `[KEY=value, KEY]`. Numbers and booleans become their YAML spelling.
func (e *Environment) UnmarshalYAML(n *yaml.Node) error {
	env := Environment{}
	switch n.Kind {
	case yaml.MappingNode:
		var m map[string]any
		if err := n.Decode(&m); err != nil {
			return err
		}
		for k, v := range m {
			if v == nil {
				env[k] = ""
				continue
			}
			env[k] = fmt.Sprint(v)
		}
	case yaml.SequenceNode:
		for _, item := range n.Content {
			k, v, _ := strings.Cut(item.Value, "=")
			env[k] = v
		}
	default:
		return fmt.Errorf("line %d: environment must be a map or a list", n.Line)
	}
	*e = env
	return nil
}

// Keys returns the variable names in sorted order.
func (e Environment) Keys() []string {
	keys := make([]string, 0, len(e))
	for k := range e {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Port is a published port. HostIP and Published are empty when the port is
// not published on the host.
type Port struct {
	HostIP    string `yaml:"host_ip"`
	Published string `yaml:"published"`
	Target    int    `yaml:"target"`
	Protocol  string `yaml:"protocol"`
}

// UnmarshalYAML accepts the short syntax ("[ip:][published:]target[/proto]")
// and the long one ({target, published, host_ip, protocol}).
func (p *Port) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		type plain Port
		return n.Decode((*plain)(p))
	}
	s := n.Value
	if rest, proto, ok := strings.Cut(s, "/"); ok {
		s, p.Protocol = rest, proto
	}
	parts := strings.Split(s, ":")
	var target string
	switch len(parts) {
	case 1:
		target = parts[0]
	case 2:
		p.Published, target = parts[0], parts[1]
	case 3:
		p.HostIP, p.Published, target = parts[0], parts[1], parts[2]
	default:
		return fmt.Errorf("line %d: port %q: want [ip:][published:]target", n.Line, n.Value)
	}
	t, err := strconv.Atoi(target)
	if err != nil {
		return fmt.Errorf("line %d: port %q: target %q is not a number", n.Line, n.Value, target)
	}
	p.Target = t
	return nil
}

// Healthcheck is a service's healthcheck section.
type Healthcheck struct {
	Test        Command `yaml:"test"`
	Interval    string  `yaml:"interval"`
	Timeout     string  `yaml:"timeout"`
	StartPeriod string  `yaml:"start_period"`
	Retries     int     `yaml:"retries"`
	Disable     bool    `yaml:"disable"`
}

// Dependency is one entry of depends_on.
type Dependency struct {
	// Condition is service_started, service_healthy or
	// service_completed_successfully; the list form means service_started.
	Condition string `yaml:"condition"`
}

// DependsOn maps a service's dependencies to their conditions.
type DependsOn map[string]Dependency

// UnmarshalYAML accepts a list of names and a map of name → {condition}.
func (d *DependsOn) UnmarshalYAML(n *yaml.Node) error {
	deps := DependsOn{}
	if n.Kind == yaml.SequenceNode {
		var names []string
		if err := n.Decode(&names); err != nil {
			return err
		}
		for _, name := range names {
			deps[name] = Dependency{Condition: "service_started"}
		}
		*d = deps
		return nil
	}
	m := map[string]Dependency{}
	if err := n.Decode(&m); err != nil {
		return err
	}
	for name, dep := range m {
		if dep.Condition == "" {
			dep.Condition = "service_started"
		}
		deps[name] = dep
	}
	*d = deps
	return nil
}

// Load reads a compose file with every variable at its default, as when
// none of them is set, so the result does not depend on the caller's
// environment.
func Load(path string) (*File, error) {
	return LoadWith(path, func(string) (string, bool) { return "", false })
}

// LoadWith reads a compose file, interpolating variables from lookup
// (os.LookupEnv to see what `docker compose` would run here).
func LoadWith(path string, lookup func(string) (string, bool)) (*File, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	text, err := Interpolate(string(raw), lookup)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var f File
	if err := yaml.Unmarshal([]byte(text), &f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(f.Services) == 0 {
		return nil, fmt.Errorf("%s: no services", path)
	}
	return &f, nil
}

// ServiceEnv returns the environment docker-compose.yml at path gives
// service, with variables at their defaults. Service modules use it to check
// that every PDM_* key there is one their config reads (config.EnvKeys).
func ServiceEnv(path, service string) (map[string]string, error) {
	f, err := Load(path)
	if err != nil {
		return nil, err
	}
	s, ok := f.Services[service]
	if !ok {
		return nil, fmt.Errorf("%s: no service %q", path, service)
	}
	env := make(map[string]string, len(s.Environment))
	for k, v := range s.Environment {
		env[k] = v
	}
	return env, nil
}

// Unread returns, sorted, the PDM_* keys of env that are not among reads
// (a config's keys, config.EnvKeys): settings docker-compose.yml gives a
// service that it would silently ignore.
func Unread(env map[string]string, reads []string) []string {
	var out []string
	for k := range env {
		if strings.HasPrefix(k, "PDM_") && !slices.Contains(reads, k) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}
