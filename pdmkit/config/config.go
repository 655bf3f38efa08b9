// Package config loads a service's configuration struct from, in rising
// precedence, the defaults already in the struct, a YAML file, environment
// variables and command-line flags.
//
// Fields take part through tags: `yaml:"name"` for the file and the flag
// (nested structs give dotted flag names such as -mqtt.url, and "_" becomes
// "-") and
// `env:"PDM_NAME"` for the environment. Secrets should come from env or a
// file: a field tagged `secret:"true"` with `env:"PDM_X"` is also read from
// the file PDM_X_FILE names when PDM_X is unset. String never prints secret
// fields.
package config

import (
	"flag"
	"fmt"
	"io"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Load applies the YAML file at path (skipped when path is empty) and then
// the environment to cfg, a pointer to a struct holding its defaults.
// Unknown keys in the file are an error, so typos do not pass silently.
func Load(path string, cfg any) error {
	if path != "" {
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("config: %w", err)
		}
		defer f.Close()
		dec := yaml.NewDecoder(f)
		dec.KnownFields(true)
		if err := dec.Decode(cfg); err != nil && err.Error() != "EOF" {
			return fmt.Errorf("config: %s: %w", path, err)
		}
	}
	var errs []string
	walk(reflect.ValueOf(cfg).Elem(), "", func(f field) {
		if f.env == "" {
			return
		}
		s, ok := os.LookupEnv(f.env)
		if !ok && f.secret {
			s, ok = secretFile(f.env+"_FILE", &errs)
		}
		if !ok {
			return
		}
		if err := set(f.v, s); err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", f.env, err))
		}
	})
	if len(errs) > 0 {
		return fmt.Errorf("config: environment: %s", strings.Join(errs, "; "))
	}
	return nil
}

// secretFile reads the secret named by the file variable (PDM_X_FILE beside
// PDM_X), as container secrets are mounted; one trailing newline is dropped.
func secretFile(key string, errs *[]string) (string, bool) {
	path, ok := os.LookupEnv(key)
	if !ok || path == "" {
		return "", false
	}
	b, err := os.ReadFile(path)
	if err != nil {
		*errs = append(*errs, fmt.Sprintf("%s: %v", key, err))
		return "", false
	}
	return strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r"), true
}

// LoadString applies YAML text to cfg with the same strictness as Load, for
// embedded samples and tests.
func LoadString(text string, cfg any) error {
	dec := yaml.NewDecoder(strings.NewReader(text))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return nil
}

// BindFlags registers one flag per field of cfg on fs, named after its YAML
// path with "_" written "-" (mqtt.client_id → -mqtt.client-id), its default
// the field's value in cfg (so -h lists every default; secrets show none). After fs.Parse, call
// the returned function to apply the flags the user set (and only those), so
// flags win over file and environment.
func BindFlags(fs *flag.FlagSet, cfg any) (apply func() error) {
	vals := map[string]*string{}
	targets := map[string]reflect.Value{}
	walk(reflect.ValueOf(cfg).Elem(), "", func(f field) {
		usage := f.help
		if f.env != "" {
			usage += " (env " + f.env + ")"
		}
		name := strings.ReplaceAll(f.path, "_", "-")
		def := ""
		if !f.secret {
			def = format(f.v)
		}
		vals[name] = fs.String(name, def, usage)
		targets[name] = f.v
	})
	return func() error {
		var err error
		fs.Visit(func(fl *flag.Flag) {
			if v, ok := targets[fl.Name]; ok && err == nil {
				if e := set(v, *vals[fl.Name]); e != nil {
					err = fmt.Errorf("config: flag -%s: %w", fl.Name, e)
				}
			}
		})
		return err
	}
}

// EnvKeys lists the environment variables cfg reads, sorted.
func EnvKeys(cfg any) []string {
	var keys []string
	walk(reflect.ValueOf(cfg).Elem(), "", func(f field) {
		if f.env != "" {
			keys = append(keys, f.env)
		}
		if f.env != "" && f.secret {
			keys = append(keys, f.env+"_FILE")
		}
	})
	sort.Strings(keys)
	return keys
}

// String renders cfg as YAML with secret fields masked, for logs.
func String(cfg any) string {
	c := reflect.New(reflect.TypeOf(cfg).Elem())
	c.Elem().Set(reflect.ValueOf(cfg).Elem())
	walk(c.Elem(), "", func(f field) {
		if f.secret && f.v.Kind() == reflect.String && f.v.String() != "" {
			f.v.SetString("***")
		}
	})
	b, _ := yaml.Marshal(c.Interface())
	return string(b)
}

type field struct {
	v      reflect.Value
	path   string
	env    string
	help   string
	secret bool
}

var durationType = reflect.TypeOf(time.Duration(0))

func walk(v reflect.Value, prefix string, fn func(field)) {
	walkEnv(v, prefix, "", fn)
}

// walkEnv walks v's fields. A block shared by several sections, such as
// tlsconf.Config, names its variables relative to the section: a struct field
// tagged `env:"PDM_MQTT_TLS"` holding a field tagged `env:"_CA_FILE"` reads
// PDM_MQTT_TLS_CA_FILE.
func walkEnv(v reflect.Value, prefix, envPrefix string, fn func(field)) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if name == "" || name == "-" || !sf.IsExported() {
			continue
		}
		path := name
		if prefix != "" {
			path = prefix + "." + name
		}
		fv := v.Field(i)
		env := sf.Tag.Get("env")
		if strings.HasPrefix(env, "_") {
			env = ""
			if envPrefix != "" {
				env = envPrefix + sf.Tag.Get("env")
			}
		}
		if fv.Kind() == reflect.Struct && sf.Type != durationType {
			walkEnv(fv, path, env, fn)
			continue
		}
		if !settable(fv) {
			continue
		}
		fn(field{v: fv, path: path, env: env, help: sf.Tag.Get("help"), secret: sf.Tag.Get("secret") == "true"})
	}
}

// settable reports whether set handles v's type; other fields come from the
// file only.
func settable(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.String, reflect.Bool, reflect.Float64,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return true
	case reflect.Slice:
		return v.Type().Elem().Kind() == reflect.String
	}
	return false
}

// format writes v as set reads it: durations as 1m30s, lists comma separated.
func format(v reflect.Value) string {
	switch {
	case v.Type() == durationType:
		return time.Duration(v.Int()).String()
	case v.Kind() == reflect.Slice:
		parts := make([]string, v.Len())
		for i := range parts {
			parts[i] = v.Index(i).String()
		}
		return strings.Join(parts, ",")
	}
	return fmt.Sprint(v.Interface())
}

func set(v reflect.Value, s string) error {
	switch {
	case v.Type() == durationType:
		d, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		v.SetInt(int64(d))
	case v.Kind() == reflect.String:
		v.SetString(s)
	case v.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return err
		}
		v.SetBool(b)
	case v.Kind() >= reflect.Int && v.Kind() <= reflect.Int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return err
		}
		v.SetInt(n)
	case v.Kind() >= reflect.Uint && v.Kind() <= reflect.Uint64:
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return err
		}
		v.SetUint(n)
	case v.Kind() == reflect.Float64:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return err
		}
		v.SetFloat(f)
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.String:
		var parts []string
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				parts = append(parts, p)
			}
		}
		v.Set(reflect.ValueOf(parts))
	default:
		return fmt.Errorf("unsupported type %s", v.Type())
	}
	return nil
}

// Parse is the whole configuration step of a command: flags -config FILE,
// -print-config and one per field of cfg (BindFlags), then file,
// environment and flags applied in rising precedence. With -print-config it
// writes sample to stdout and reports printed, and the command should exit.
// extra adds a command's own flags that are not configuration.
func Parse(name string, args []string, cfg any, sample string, stdout io.Writer, extra ...func(*flag.FlagSet)) (printed bool, err error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	path := fs.String("config", "", "YAML configuration file (flags > environment > file > defaults)")
	printCfg := fs.Bool("print-config", false, "print the annotated sample configuration and exit")
	apply := BindFlags(fs, cfg)
	for _, add := range extra {
		add(fs)
	}
	if err := fs.Parse(args); err != nil {
		return false, err
	}
	if *printCfg {
		_, err := io.WriteString(stdout, sample)
		return true, err
	}
	if err := Load(*path, cfg); err != nil {
		return false, err
	}
	return false, apply()
}
