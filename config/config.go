// Package config holds Invigil's settings: one struct with defaults, then an
// optional JSON config file, then INVIGIL_* environment variables, then
// command-line flags, each overriding the one before.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Config is every setting a subcommand may read. Field names in JSON are the
// keys of the config file.
type Config struct {
	// Addr is the HOST:PORT the HTTP server listens on.
	Addr string `json:"addr"`
	// DataDir holds the SQLite database, recordings and evidence.
	DataDir string `json:"data_dir"`
	// DatabaseURL, if set, keeps the state in that PostgreSQL database
	// (postgres://user:password@host:5432/db) instead of the SQLite file in
	// DataDir, so that several nodes can share it.
	DatabaseURL string `json:"database_url"`
	// NATSURL, if set, is the NATS server (nats://host:4222, with
	// JetStream) through which several nodes tell each other of new live
	// events and hand violations over with acknowledgement; empty keeps
	// both inside the process.
	NATSURL string `json:"nats_url"`
	// NodeID names this process among several nodes: every metric carries
	// it as the label `node`. Empty means the host name.
	NodeID string `json:"node_id"`
	// Role is what this process does: "all" (the default: control plane
	// and media in one process), "control" (pages, API, the store; media
	// on other nodes, reached over NATS) or "media" (SFU, recording and
	// analysis, placed on by the control nodes). control and media need
	// NATSURL and a shared DatabaseURL.
	Role string `json:"role"`
	// AdvertiseURL is the base URL browsers and simulate reach a media
	// node at (https://media-1.example:8443); empty means the listening
	// address.
	AdvertiseURL string `json:"advertise_url"`
	// InternalURL is the base URL the other nodes reach this node at, to
	// fetch the recordings and evidence it holds (http://media-1:8080 on
	// a private network); empty means AdvertiseURL, else the listening
	// address.
	InternalURL string `json:"internal_url"`
	// Capacity is how many candidates a media node takes before the
	// control plane places exams elsewhere (0: 8 per core).
	Capacity int64 `json:"capacity"`
	// SFUOrigins lists, comma-separated, the browser origins (host
	// patterns such as "exam.example.org" or "*.example.org") whose pages
	// may open this node's signaling socket besides its own: a media
	// node's must name the control nodes' hosts.
	SFUOrigins string `json:"sfu_origins"`
	// ModelsDir holds the provisioned ONNX models and their manifest.
	ModelsDir string `json:"models_dir"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `json:"log_level"`
	// LogFormat is text (for people) or json (for log collectors).
	LogFormat string `json:"log_format"`
	// MaxBodyBytes caps every request body so one client cannot exhaust memory.
	MaxBodyBytes int64 `json:"max_body_bytes"`
	// ShutdownTimeout bounds how long in-flight requests may finish on SIGTERM.
	ShutdownTimeout Duration `json:"shutdown_timeout"`
	// BodyTimeout is how long a request body may take to arrive after its
	// headers, so clients trickling bodies cannot hold connections.
	BodyTimeout Duration `json:"body_timeout"`
	// MaxConnsPerNetwork caps the connections one client network (an IPv4
	// address, an IPv6 /64) keeps open at once; 0 for no cap.
	MaxConnsPerNetwork int64 `json:"max_conns_per_network"`
	// SFUTokenKey signs and checks the SFU's join tokens (HMAC-SHA256) until
	// the control plane issues them; at least 16 bytes. Empty: a random key
	// per process, so tokens die with the process.
	SFUTokenKey string `json:"sfu_token_key"`
	// ICEPublicIPs are the addresses announced to peers instead of the
	// host's own (comma-separated; 1:1 NAT, a cloud VM, a Docker port map).
	ICEPublicIPs string `json:"ice_public_ips"`
	// ICEUDPPort, if not 0, carries every peer connection on this one UDP
	// port (one port to open in a firewall); 0 uses ephemeral ports.
	ICEUDPPort int64 `json:"ice_udp_port"`
	// ICETCPPort, if not 0, also accepts ICE over TCP on this port, for
	// clients on networks that block UDP.
	ICETCPPort int64 `json:"ice_tcp_port"`
	// ICELoopback also offers 127.0.0.1 candidates (a browser or simulated
	// candidate on the same machine, a host with no other interface).
	ICELoopback bool `json:"ice_loopback"`

	// EarlyLoginMinutes is how long before an exam's start candidates may
	// log in (the candidate guide's 45 minutes); an exam may set its own.
	EarlyLoginMinutes int64 `json:"early_login_minutes"`
	// CodeAttempts is how many wrong invitation codes one client network
	// (an IPv4 address, an IPv6 /64) may send before it must wait (429 with
	// a growing Retry-After); a right code does not forgive them.
	CodeAttempts int64 `json:"code_attempts"`
	// CodeAlertAddresses: this many networks sending wrong codes within 10
	// minutes raises invigil_code_guessing_alert (a distributed guess).
	CodeAlertAddresses int64 `json:"code_alert_addresses"`
	// CodeFailuresPerMinute is the ceiling of wrong codes a minute from all
	// networks together; while it is reached every code login waits and
	// invigil_code_guessing_alert is raised.
	CodeFailuresPerMinute int64 `json:"code_failures_per_minute"`
	// LoginAttempts is how many wrong staff passwords one username may get,
	// and LoginNetworkAttempts how many one client network may send, before
	// each further one owes a growing wait.
	LoginAttempts        int64 `json:"login_attempts"`
	LoginNetworkAttempts int64 `json:"login_network_attempts"`
	// SecureCookies marks login cookies Secure even when the server sees
	// plain HTTP: set it behind a proxy that terminates TLS.
	SecureCookies bool `json:"secure_cookies"`
	// MetricsToken, if set, is the bearer token /metrics requires.
	MetricsToken string `json:"metrics_token"`
	// ClusterKey is the secret every node of a cluster shares: a node
	// fetching a recording or evidence file from another node's data
	// directory signs the request with it (at least 16 characters;
	// required for roles control and media).
	ClusterKey string `json:"cluster_key"`
	// StaffSession is how long a staff login lasts.
	StaffSession Duration `json:"staff_session"`
	// RiskWeights are the points one violation of each type adds to a
	// candidate's risk score ("type=points,…").
	RiskWeights string `json:"risk_weights"`
	// CalmInterval is how often a candidate whose picture does not change
	// is analyzed; a changing picture is analyzed at the policy's rate. A
	// negative value analyses everyone at the policy's rate.
	CalmInterval Duration `json:"calm_interval"`
}

// Duration is a time.Duration written as "10s" in the config file.
type Duration time.Duration

// UnmarshalJSON accepts Go duration strings such as "750ms" or "1m".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"10s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes the duration the way UnmarshalJSON reads it.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// String implements flag.Value.
func (d *Duration) String() string { return time.Duration(*d).String() }

// Set implements flag.Value.
func (d *Duration) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Defaults returns the embedded defaults. home is the user's home directory,
// which decides where models are cached; an empty home (no HOME set) falls
// back to a directory beside the data so nothing lands in "/".
func Defaults(home string) Config {
	models := filepath.Join("data", "models")
	if home != "" {
		models = filepath.Join(home, ".cache", "invigil", "models")
	}
	return Config{
		Addr:            "127.0.0.1:8080",
		DataDir:         "./data",
		ModelsDir:       models,
		LogLevel:        "info",
		LogFormat:       "text",
		MaxBodyBytes:    1 << 20,
		ShutdownTimeout: Duration(10 * time.Second),
		// Behind one school's NAT many candidates share an address, each
		// with a page, an event stream and a signaling socket.
		BodyTimeout:        Duration(10 * time.Second),
		MaxConnsPerNetwork: 256,

		EarlyLoginMinutes:  45,
		CodeAttempts:       5,
		CodeAlertAddresses: 20,
		StaffSession:       Duration(12 * time.Hour),
		RiskWeights:        DefaultRiskWeights,
		CalmInterval:       Duration(time.Second),
		// About three times the typos of a large exam's busiest minute
		// (2000 candidates logging in within 45 minutes, a burst at the
		// start). It bounds a botnet, it does not stop one: with 3000 of a
		// million codes active, 30 guesses a minute still hit about every
		// 11 minutes, so the alert it raises is for an operator to act on.
		CodeFailuresPerMinute: 30,
		LoginAttempts:         5,
		// An office of staff behind one address mistypes more than one
		// person, and a guesser of one account is held by LoginAttempts.
		LoginNetworkAttempts: 20,
	}
}

// setting ties one Config field to its flag and environment variable, so the
// three sources cannot drift apart.
type setting struct {
	flag, env, usage string
	field            func(*Config) flag.Value
}

var settings = []setting{
	{"addr", "INVIGIL_ADDR", "`HOST:PORT` to listen on", func(c *Config) flag.Value { return (*stringValue)(&c.Addr) }},
	{"data", "INVIGIL_DATA", "data `DIR` (database, recordings, evidence)", func(c *Config) flag.Value { return (*stringValue)(&c.DataDir) }},
	{"database-url", "INVIGIL_DATABASE_URL", "PostgreSQL `URL` (postgres://user:password@host:5432/db) to keep the state in, shared by several nodes (default: the SQLite file DIR/invigil.db)", func(c *Config) flag.Value { return (*stringValue)(&c.DatabaseURL) }},
	{"nats-url", "INVIGIL_NATS_URL", "NATS `URL` (nats://host:4222, JetStream enabled) through which several nodes share live events and hand violations over (default: none, all inside this process)", func(c *Config) flag.Value { return (*stringValue)(&c.NATSURL) }},
	{"role", "INVIGIL_ROLE", "what this node does: `ROLE` all (default), control or media (several nodes; needs --nats-url and --database-url)", func(c *Config) flag.Value { return (*stringValue)(&c.Role) }},
	{"advertise-url", "INVIGIL_ADVERTISE_URL", "base `URL` browsers reach this media node at (default: the listening address)", func(c *Config) flag.Value { return (*stringValue)(&c.AdvertiseURL) }},
	{"internal-url", "INVIGIL_INTERNAL_URL", "base `URL` the other nodes reach this node at for its recordings and evidence (default: --advertise-url, else the listening address)", func(c *Config) flag.Value { return (*stringValue)(&c.InternalURL) }},
	{"capacity", "INVIGIL_CAPACITY", "candidates this media node takes (`N`; 0: 8 per core)", func(c *Config) flag.Value { return (*int64Value)(&c.Capacity) }},
	{"sfu-origins", "INVIGIL_SFU_ORIGINS", "browser `HOSTS` (comma-separated patterns, e.g. exam.example.org) whose pages may use this node's SFU besides its own", func(c *Config) flag.Value { return (*stringValue)(&c.SFUOrigins) }},
	{"node-id", "INVIGIL_NODE_ID", "`NAME` of this node among several; every metric is labeled node=NAME (default: the host name)", func(c *Config) flag.Value { return (*stringValue)(&c.NodeID) }},
	{"models", "INVIGIL_MODELS", "models `DIR`", func(c *Config) flag.Value { return (*stringValue)(&c.ModelsDir) }},
	{"log-level", "INVIGIL_LOG_LEVEL", "log `LEVEL`: debug, info, warn, error", func(c *Config) flag.Value { return (*stringValue)(&c.LogLevel) }},
	{"log-format", "INVIGIL_LOG_FORMAT", "log `FORMAT`: text or json", func(c *Config) flag.Value { return (*stringValue)(&c.LogFormat) }},
	{"max-body-bytes", "INVIGIL_MAX_BODY_BYTES", "largest request body in `BYTES`", func(c *Config) flag.Value { return (*int64Value)(&c.MaxBodyBytes) }},
	{"shutdown-timeout", "INVIGIL_SHUTDOWN_TIMEOUT", "how long requests may finish on shutdown (`DURATION`)", func(c *Config) flag.Value { return &c.ShutdownTimeout }},
	{"body-timeout", "INVIGIL_BODY_TIMEOUT", "how long a request body may take to arrive (`DURATION`)", func(c *Config) flag.Value { return &c.BodyTimeout }},
	{"max-conns-per-network", "INVIGIL_MAX_CONNS_PER_NETWORK", "open connections one client network may hold (`N`; 0: no cap)", func(c *Config) flag.Value { return (*int64Value)(&c.MaxConnsPerNetwork) }},
	{"sfu-token-key", "INVIGIL_SFU_TOKEN_KEY", "`KEY` that signs SFU join tokens until the control plane issues them (default: random per process)", func(c *Config) flag.Value { return (*stringValue)(&c.SFUTokenKey) }},
	{"ice-public-ip", "INVIGIL_ICE_PUBLIC_IPS", "public `IPS` to announce for media (comma-separated; behind 1:1 NAT or Docker)", func(c *Config) flag.Value { return (*stringValue)(&c.ICEPublicIPs) }},
	{"ice-udp-port", "INVIGIL_ICE_UDP_PORT", "one UDP `PORT` for all media (0: ephemeral ports)", func(c *Config) flag.Value { return (*int64Value)(&c.ICEUDPPort) }},
	{"ice-tcp-port", "INVIGIL_ICE_TCP_PORT", "TCP `PORT` for media when UDP is blocked (0: off)", func(c *Config) flag.Value { return (*int64Value)(&c.ICETCPPort) }},
	{"early-login-minutes", "INVIGIL_EARLY_LOGIN_MINUTES", "`MINUTES` before an exam's start that candidates may log in", func(c *Config) flag.Value { return (*int64Value)(&c.EarlyLoginMinutes) }},
	{"code-attempts", "INVIGIL_CODE_ATTEMPTS", "wrong invitation codes one address may send before it must wait (`N`)", func(c *Config) flag.Value { return (*int64Value)(&c.CodeAttempts) }},
	{"code-alert-addresses", "INVIGIL_CODE_ALERT_ADDRESSES", "`N` addresses with wrong codes in 10 minutes raise the guessing alert", func(c *Config) flag.Value { return (*int64Value)(&c.CodeAlertAddresses) }},
	{"code-failures-per-minute", "INVIGIL_CODE_FAILURES_PER_MINUTE", "wrong invitation codes a minute from all networks before every code login waits (`N`)", func(c *Config) flag.Value { return (*int64Value)(&c.CodeFailuresPerMinute) }},
	{"login-attempts", "INVIGIL_LOGIN_ATTEMPTS", "wrong staff passwords one username may get before it must wait (`N`)", func(c *Config) flag.Value { return (*int64Value)(&c.LoginAttempts) }},
	{"login-network-attempts", "INVIGIL_LOGIN_NETWORK_ATTEMPTS", "wrong staff passwords one client network may send before it must wait (`N`)", func(c *Config) flag.Value { return (*int64Value)(&c.LoginNetworkAttempts) }},
	{"secure-cookies", "INVIGIL_SECURE_COOKIES", "mark login cookies Secure on plain HTTP too (behind a TLS-terminating proxy)", func(c *Config) flag.Value { return (*boolValue)(&c.SecureCookies) }},
	{"cluster-key", "INVIGIL_CLUSTER_KEY", "secret `KEY` all nodes of a cluster share, to fetch recordings and evidence from each other (at least 16 characters; roles control and media)", func(c *Config) flag.Value { return (*stringValue)(&c.ClusterKey) }},
	{"metrics-token", "INVIGIL_METRICS_TOKEN", "bearer `TOKEN` that /metrics requires (default: none, /metrics open)", func(c *Config) flag.Value { return (*stringValue)(&c.MetricsToken) }},
	{"staff-session", "INVIGIL_STAFF_SESSION", "how long a staff login lasts (`DURATION`)", func(c *Config) flag.Value { return &c.StaffSession }},
	{"calm-interval", "INVIGIL_CALM_INTERVAL", "analyze a still picture this often (`DURATION`; negative: always at the policy's rate)", func(c *Config) flag.Value { return &c.CalmInterval }},
	{"risk-weights", "INVIGIL_RISK_WEIGHTS", "risk points per violation `TYPE=POINTS,…`", func(c *Config) flag.Value { return (*stringValue)(&c.RiskWeights) }},
	{"ice-loopback", "INVIGIL_ICE_LOOPBACK", "also offer 127.0.0.1 for media (clients on this machine)", func(c *Config) flag.Value { return (*boolValue)(&c.ICELoopback) }},
}

// EnvConfigFile names the config file when --config is not given.
const EnvConfigFile = "INVIGIL_CONFIG"

// Flags are the config flags registered on one subcommand's FlagSet.
type Flags struct {
	fs     *flag.FlagSet
	values Config
	file   string
	names  map[string]bool
}

// Register adds --config and the named settings' flags (all when names is
// empty) to fs. Each subcommand registers only the settings it uses, so its
// -h lists no flag that does nothing.
func Register(fs *flag.FlagSet, names ...string) *Flags {
	f := &Flags{fs: fs, names: map[string]bool{}}
	fs.StringVar(&f.file, "config", "", "JSON config `FILE` (default $"+EnvConfigFile+")")
	// Flag defaults are shown from the embedded defaults; the parsed value is
	// used only when the flag was given, so they never mask env or file.
	f.values = Defaults(homeDir())
	for _, s := range settings {
		if len(names) > 0 && !slices.Contains(names, s.flag) {
			continue
		}
		f.names[s.flag] = true
		fs.Var(s.field(&f.values), s.flag, s.usage+" (env "+s.env+")")
	}
	return f
}

// Resolve builds the Config after fs.Parse: defaults, then the config file,
// then environment variables from getenv, then the flags that were set.
func (f *Flags) Resolve(getenv func(string) string) (Config, error) {
	cfg := Defaults(homeDirFrom(getenv))
	path := f.file
	if path == "" {
		path = getenv(EnvConfigFile)
	}
	if path != "" {
		if err := loadFile(path, &cfg); err != nil {
			return Config{}, err
		}
	}
	for _, s := range settings {
		v := getenv(s.env)
		if v == "" {
			continue
		}
		if err := s.field(&cfg).Set(v); err != nil {
			return Config{}, fmt.Errorf("environment %s=%q: %w", s.env, v, err)
		}
	}
	var flagErr error
	f.fs.Visit(func(fl *flag.Flag) {
		if !f.names[fl.Name] || flagErr != nil {
			return
		}
		for _, s := range settings {
			if s.flag == fl.Name {
				// Set cannot fail here: flag.Parse already accepted the same text.
				flagErr = s.field(&cfg).Set(fl.Value.String())
			}
		}
	})
	if flagErr != nil {
		return Config{}, flagErr
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// loadFile reads a JSON config file over cfg. Unknown keys are errors: a
// misspelled key silently ignored would leave the default in force unnoticed.
func loadFile(path string, cfg *Config) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(cfg); err != nil {
		return fmt.Errorf("config file %s: %w", path, describeJSONError(b, err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("config file %s: unexpected data after the JSON object", path)
	}
	return nil
}

// describeJSONError adds the line number, which encoding/json reports only as
// a byte offset.
func describeJSONError(b []byte, err error) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return fmt.Errorf("line %d: %w", lineOf(b, syntax.Offset), err)
	case errors.As(err, &typ):
		return fmt.Errorf("line %d: key %q: want %s, got %s", lineOf(b, typ.Offset), typ.Field, typ.Type, typ.Value)
	}
	return err
}

func lineOf(b []byte, offset int64) int {
	if offset > int64(len(b)) {
		offset = int64(len(b))
	}
	return bytes.Count(b[:offset], []byte("\n")) + 1
}

// validDatabaseURL checks the form of DatabaseURL; whether the server
// answers is for the store to find out. Its messages never repeat the URL,
// which may hold a password.
func (c Config) validDatabaseURL() error {
	if c.DatabaseURL == "" {
		return nil
	}
	if !strings.HasPrefix(c.DatabaseURL, "postgres://") && !strings.HasPrefix(c.DatabaseURL, "postgresql://") {
		return errors.New("database url: want postgres://user:password@host:5432/db (or postgresql://…); leave it empty for the SQLite file in the data directory")
	}
	u, err := url.Parse(c.DatabaseURL)
	if err != nil {
		// url's errors quote the URL; say only what is wrong.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("database url: not a valid URL: %w", err)
	}
	if u.Host == "" && u.Query().Get("host") == "" {
		return errors.New("database url: no host (postgres://user:password@HOST:5432/db)")
	}
	return nil
}

// validNATSURL checks the form of NATSURL (a comma-separated list of
// servers, as the NATS client takes it); whether a server answers is for
// the connection to find out. Like validDatabaseURL it never repeats the
// URL, which may hold a password.
func (c Config) validNATSURL() error {
	if c.NATSURL == "" {
		return nil
	}
	for _, one := range strings.Split(c.NATSURL, ",") {
		one = strings.TrimSpace(one)
		u, err := url.Parse(one)
		if err != nil {
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			return fmt.Errorf("nats url: not a valid URL: %w", err)
		}
		switch u.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return errors.New("nats url: want nats://host:4222 (or tls://, ws://, wss://; several separated by commas); leave it empty to keep events and violations inside this process")
		}
		if u.Host == "" {
			return errors.New("nats url: no host (nats://HOST:4222)")
		}
	}
	return nil
}

// Roles of a node.
const (
	RoleAll     = "all"
	RoleControl = "control"
	RoleMedia   = "media"
)

// OriginPatterns splits SFUOrigins.
func (c Config) OriginPatterns() []string {
	var out []string
	for _, p := range strings.Split(c.SFUOrigins, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// NodeRole is Role with its default.
func (c Config) NodeRole() string {
	if c.Role == "" {
		return RoleAll
	}
	return c.Role
}

// validNodeID: a node's name goes into metric labels, log lines and
// (between nodes) NATS subjects, where '.' separates tokens, so it keeps
// to letters, digits, '_' and '-' (cluster.ValidNode).
func validNodeID(id string) bool {
	if len(id) == 0 || len(id) > 63 {
		return false
	}
	for i, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case i > 0 && (r == '_' || r == '-'):
		default:
			return false
		}
	}
	return true
}

// NodeName is the node's name: NodeID, or the host name (made safe) when
// that is empty.
func (c Config) NodeName() string {
	if c.NodeID != "" {
		return c.NodeID
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		return "invigil"
	}
	b := []byte(host)
	for i, r := range b {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || i > 0 && (r == '_' || r == '-')) {
			b[i] = '-'
		}
	}
	if len(b) > 63 {
		b = b[:63]
	}
	if b[0] == '-' {
		b[0] = 'n'
	}
	return string(b)
}

// Validate reports the first setting that cannot work, naming it.
func (c Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("addr %q: want HOST:PORT: %w", c.Addr, err)
	}
	if c.DataDir == "" {
		return errors.New("data dir is empty")
	}
	if c.ModelsDir == "" {
		return errors.New("models dir is empty")
	}
	if err := c.validDatabaseURL(); err != nil {
		return err
	}
	if err := c.validNATSURL(); err != nil {
		return err
	}
	switch c.Role {
	case "", RoleAll:
	case RoleControl, RoleMedia:
		if c.NATSURL == "" || c.DatabaseURL == "" {
			return fmt.Errorf("role %s: several nodes need --nats-url and a shared --database-url (PostgreSQL)", c.Role)
		}
		if c.ClusterKey == "" {
			return fmt.Errorf("role %s: several nodes need a shared --cluster-key (INVIGIL_CLUSTER_KEY, at least 16 characters, e.g. `openssl rand -hex 32`) to fetch recordings and evidence from each other", c.Role)
		}
	default:
		return fmt.Errorf("role %q: want all, control or media", c.Role)
	}
	for _, b := range []struct{ name, url string }{{"advertise url", c.AdvertiseURL}, {"internal url", c.InternalURL}} {
		if b.url == "" {
			continue
		}
		u, err := url.Parse(b.url)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return fmt.Errorf("%s %q: want the node's base URL, http(s)://host[:port]", b.name, b.url)
		}
	}
	if c.Capacity < 0 {
		return fmt.Errorf("capacity %d: want 0 (8 per core) or more", c.Capacity)
	}
	if c.NodeID != "" && !validNodeID(c.NodeID) {
		return fmt.Errorf("node id %q: want 1–63 letters, digits, '_' or '-', starting with a letter or digit", c.NodeID)
	}
	if _, err := c.SlogLevel(); err != nil {
		return err
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return fmt.Errorf("log format %q: want text or json", c.LogFormat)
	}
	if c.MaxBodyBytes <= 0 {
		return fmt.Errorf("max body bytes %d: must be positive", c.MaxBodyBytes)
	}
	if c.ShutdownTimeout < 0 {
		return fmt.Errorf("shutdown timeout %s: must not be negative", time.Duration(c.ShutdownTimeout))
	}
	if c.BodyTimeout < Duration(100*time.Millisecond) {
		return fmt.Errorf("body timeout %s: want at least 100ms", time.Duration(c.BodyTimeout))
	}
	if c.MaxConnsPerNetwork < 0 {
		return fmt.Errorf("max conns per network %d: want 0 (no cap) or more", c.MaxConnsPerNetwork)
	}
	if c.SFUTokenKey != "" && len(c.SFUTokenKey) < 16 {
		return errors.New("sfu token key: want at least 16 characters (e.g. `openssl rand -hex 32`)")
	}
	if _, err := c.PublicIPs(); err != nil {
		return err
	}
	for _, p := range []struct {
		name string
		port int64
	}{{"ice udp port", c.ICEUDPPort}, {"ice tcp port", c.ICETCPPort}} {
		if p.port < 0 || p.port > 65535 {
			return fmt.Errorf("%s %d: want 1 to 65535, or 0 for none", p.name, p.port)
		}
	}
	if c.EarlyLoginMinutes < 0 || c.EarlyLoginMinutes > 24*60 {
		return fmt.Errorf("early login minutes %d: want 0 to 1440", c.EarlyLoginMinutes)
	}
	if c.CodeAttempts < 1 {
		return fmt.Errorf("code attempts %d: want at least 1", c.CodeAttempts)
	}
	if c.CodeAlertAddresses < 1 {
		return fmt.Errorf("code alert addresses %d: want at least 1", c.CodeAlertAddresses)
	}
	if c.CodeFailuresPerMinute < 1 {
		return fmt.Errorf("code failures per minute %d: want at least 1", c.CodeFailuresPerMinute)
	}
	if c.LoginAttempts < 1 {
		return fmt.Errorf("login attempts %d: want at least 1", c.LoginAttempts)
	}
	if c.LoginNetworkAttempts < 1 {
		return fmt.Errorf("login network attempts %d: want at least 1", c.LoginNetworkAttempts)
	}
	if c.ClusterKey != "" && len(c.ClusterKey) < 16 {
		return errors.New("cluster key: want at least 16 characters (e.g. `openssl rand -hex 32`), or none")
	}
	if c.MetricsToken != "" && len(c.MetricsToken) < 16 {
		return errors.New("metrics token: want at least 16 characters (e.g. `openssl rand -hex 32`), or none")
	}
	if c.StaffSession < Duration(time.Minute) {
		return fmt.Errorf("staff session %s: want at least 1m", time.Duration(c.StaffSession))
	}
	if _, err := c.ParseRiskWeights(); err != nil {
		return err
	}
	return nil
}

// DefaultRiskWeights: another person or a covered camera weigh most (they
// defeat the whole invigilation), looking away least (it happens innocently);
// a phone call is outside help, nearly as grave as another person.
const DefaultRiskWeights = "extra_person=40,camera_blocked=30,face_off_screen=25,head_turn=10,hands_out_of_view=10,distance=5,talking=30,microphone_off=20,phone_call=35,left_page=15,second_screen=20,headphones=20"

// ParseRiskWeights reads RiskWeights ("type=points,…").
func (c Config) ParseRiskWeights() (map[string]float64, error) {
	out := map[string]float64{}
	for _, part := range strings.Split(c.RiskWeights, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, val, ok := strings.Cut(part, "=")
		w, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if !ok || strings.TrimSpace(name) == "" || err != nil || w < 0 || w > 100 {
			return nil, fmt.Errorf("risk weights: %q: want TYPE=POINTS with 0 to 100 points", part)
		}
		out[strings.TrimSpace(name)] = w
	}
	return out, nil
}

// PublicIPs parses ICEPublicIPs.
func (c Config) PublicIPs() ([]string, error) {
	var ips []string
	for _, f := range strings.Split(c.ICEPublicIPs, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if net.ParseIP(f) == nil {
			return nil, fmt.Errorf("ice public ip %q: not an IP address", f)
		}
		ips = append(ips, f)
	}
	return ips, nil
}

// SlogLevel turns LogLevel into a slog.Level.
func (c Config) SlogLevel() (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return 0, fmt.Errorf("log level %q: want debug, info, warn or error", c.LogLevel)
	}
	return l, nil
}

// NewLogger builds the slog logger the settings ask for, writing to w.
func (c Config) NewLogger(w io.Writer) *slog.Logger {
	level, err := c.SlogLevel()
	if err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

type stringValue string

func (s *stringValue) String() string     { return string(*s) }
func (s *stringValue) Set(v string) error { *s = stringValue(v); return nil }

type boolValue bool

func (b *boolValue) String() string { return strconv.FormatBool(bool(*b)) }
func (b *boolValue) Set(v string) error {
	x, err := strconv.ParseBool(strings.TrimSpace(v))
	if err != nil {
		return fmt.Errorf("want true or false, got %q", v)
	}
	*b = boolValue(x)
	return nil
}

// IsBoolFlag lets --ice-loopback stand alone on the command line.
func (b *boolValue) IsBoolFlag() bool { return true }

type int64Value int64

func (i *int64Value) String() string { return strconv.FormatInt(int64(*i), 10) }
func (i *int64Value) Set(v string) error {
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil {
		return fmt.Errorf("not a whole number: %q", v)
	}
	*i = int64Value(n)
	return nil
}

func homeDir() string { return homeDirFrom(os.Getenv) }

// homeDirFrom reads HOME through getenv so tests control the default models
// directory without touching the process environment.
func homeDirFrom(getenv func(string) string) string {
	if h := getenv("HOME"); h != "" {
		return h
	}
	h, _ := os.UserHomeDir()
	return h
}
