package config

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func resolve(t *testing.T, args []string, vars map[string]string) (Config, error) {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f := Register(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse %v: %v", args, err)
	}
	return f.Resolve(env(vars))
}

func writeFile(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "invigil.json")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaults(t *testing.T) {
	cfg, err := resolve(t, nil, map[string]string{"HOME": "/home/ada"})
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Addr:            "127.0.0.1:8080",
		DataDir:         "./data",
		ModelsDir:       "/home/ada/.cache/invigil/models",
		LogLevel:        "info",
		LogFormat:       "text",
		MaxBodyBytes:    1 << 20,
		ShutdownTimeout: Duration(10 * time.Second),

		BodyTimeout:        Duration(10 * time.Second),
		MaxConnsPerNetwork: 256,

		EarlyLoginMinutes:  45,
		CodeAttempts:       5,
		CodeAlertAddresses: 20,
		StaffSession:       Duration(12 * time.Hour),
		RiskWeights:        "extra_person=40,camera_blocked=30,face_off_screen=25,head_turn=10,hands_out_of_view=10,distance=5,talking=30,microphone_off=20,phone_call=35,left_page=15,second_screen=20,headphones=20",
		CalmInterval:       Duration(time.Second),

		CodeFailuresPerMinute: 30,
		LoginAttempts:         5,
		LoginNetworkAttempts:  20,
	}
	if cfg != want {
		t.Errorf("defaults\n got %+v\nwant %+v", cfg, want)
	}
}

// Each source overrides the ones below it, field by field: a flag wins over
// env, env over the file, the file over defaults, and a source that is silent
// about a field leaves the lower one in force.
func TestPrecedence(t *testing.T) {
	file := writeFile(t, `{
		"addr": "10.0.0.1:1000",
		"data_dir": "/file/data",
		"models_dir": "/file/models",
		"log_level": "warn",
		"shutdown_timeout": "3s"
	}`)
	vars := map[string]string{
		"HOME":              "/home/ada",
		"INVIGIL_ADDR":      "10.0.0.2:2000",
		"INVIGIL_DATA":      "/env/data",
		"INVIGIL_LOG_LEVEL": "debug",
	}
	cfg, err := resolve(t, []string{"--config", file, "--addr", "10.0.0.3:3000"}, vars)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct{ name, got, want string }{
		{"addr from flag", cfg.Addr, "10.0.0.3:3000"},
		{"data from env", cfg.DataDir, "/env/data"},
		{"models from file", cfg.ModelsDir, "/file/models"},
		{"log level from env", cfg.LogLevel, "debug"},
		{"log format from defaults", cfg.LogFormat, "text"},
		{"shutdown from file", time.Duration(cfg.ShutdownTimeout).String(), "3s"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, c.got, c.want)
		}
	}
}

func TestConfigFileFromEnv(t *testing.T) {
	file := writeFile(t, `{"addr": "127.0.0.1:9999"}`)
	cfg, err := resolve(t, nil, map[string]string{"INVIGIL_CONFIG": file})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != "127.0.0.1:9999" {
		t.Errorf("addr = %q, want the one from $INVIGIL_CONFIG's file", cfg.Addr)
	}
}

func TestModelsFromEnv(t *testing.T) {
	cfg, err := resolve(t, nil, map[string]string{"HOME": "/home/ada", "INVIGIL_MODELS": "/srv/models"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ModelsDir != "/srv/models" {
		t.Errorf("models dir = %q, want /srv/models", cfg.ModelsDir)
	}
}

func TestBadConfigFiles(t *testing.T) {
	cases := []struct {
		name, text string
		want       []string // substrings of the error
	}{
		{"unknown key", `{"adr": "127.0.0.1:1"}`, []string{`unknown field "adr"`}},
		{"syntax", "{\n\"addr\": \"x\",\n}", []string{"line 3", "invalid character"}},
		{"wrong type", "{\n\"max_body_bytes\": \"big\"\n}", []string{"line 2", "max_body_bytes", "int64"}},
		{"bad duration", `{"shutdown_timeout": "soon"}`, []string{"soon"}},
		{"trailing data", `{"addr": "127.0.0.1:1"} {}`, []string{"after the JSON object"}},
		{"invalid value", `{"log_level": "loud"}`, []string{`log level "loud"`}},
		{"bad addr", `{"addr": "localhost"}`, []string{`addr "localhost"`, "HOST:PORT"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			file := writeFile(t, c.text)
			_, err := resolve(t, []string{"--config", file}, nil)
			if err == nil {
				t.Fatalf("no error for %s", c.text)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestMissingConfigFile(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "absent.json")
	_, err := resolve(t, []string{"--config", missing}, nil)
	if err == nil || !strings.Contains(err.Error(), "absent.json") {
		t.Fatalf("error %v should name the missing file", err)
	}
}

func TestBadEnv(t *testing.T) {
	_, err := resolve(t, nil, map[string]string{"INVIGIL_MAX_BODY_BYTES": "lots"})
	if err == nil || !strings.Contains(err.Error(), "INVIGIL_MAX_BODY_BYTES") {
		t.Fatalf("error %v should name the variable", err)
	}
}

func TestBadFlag(t *testing.T) {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	Register(fs)
	if err := fs.Parse([]string{"--shutdown-timeout", "later"}); err == nil {
		t.Fatal("a bad duration flag parsed")
	}
}

// A subcommand that registers only some settings must not take the others
// from flags it does not have.
func TestRegisterSubset(t *testing.T) {
	fs := flag.NewFlagSet("models", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f := Register(fs, "models")
	if fs.Lookup("addr") != nil {
		t.Error("--addr registered for a subcommand that did not ask for it")
	}
	if err := fs.Parse([]string{"--models", "/m"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := f.Resolve(env(map[string]string{"HOME": "/h"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ModelsDir != "/m" || cfg.Addr != "127.0.0.1:8080" {
		t.Errorf("got %+v", cfg)
	}
}

// The media settings come from the same three sources, and bad values are
// refused with the setting named.
func TestMediaSettings(t *testing.T) {
	file := writeFile(t, `{"ice_tcp_port": 3478, "ice_public_ips": "192.0.2.1"}`)
	cfg, err := resolve(t, []string{"--config", file, "--ice-public-ip", "203.0.113.7, 2001:db8::1", "--ice-loopback", "--ice-udp-port", "50000"},
		map[string]string{"INVIGIL_SFU_TOKEN_KEY": "0123456789abcdef-key"})
	if err != nil {
		t.Fatal(err)
	}
	ips, err := cfg.PublicIPs()
	if err != nil || len(ips) != 2 || ips[0] != "203.0.113.7" || ips[1] != "2001:db8::1" {
		t.Errorf("public IPs %v, %v", ips, err)
	}
	if cfg.SFUTokenKey != "0123456789abcdef-key" || cfg.ICEUDPPort != 50000 || cfg.ICETCPPort != 3478 || !cfg.ICELoopback {
		t.Errorf("got %+v", cfg)
	}
	for _, c := range []struct {
		args []string
		vars map[string]string
		want string
	}{
		{nil, map[string]string{"INVIGIL_SFU_TOKEN_KEY": "short"}, "sfu token key"},
		{[]string{"--ice-public-ip", "example.org"}, nil, "not an IP address"},
		{[]string{"--ice-udp-port", "70000"}, nil, "ice udp port"},
		{nil, map[string]string{"INVIGIL_ICE_LOOPBACK": "maybe"}, "INVIGIL_ICE_LOOPBACK"},
	} {
		if _, err := resolve(t, c.args, c.vars); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v %v: error %v, want it to mention %q", c.args, c.vars, err, c.want)
		}
	}
}

func TestRiskWeights(t *testing.T) {
	cfg, err := resolve(t, nil, map[string]string{"INVIGIL_RISK_WEIGHTS": "extra_person=50, distance=0"})
	if err != nil {
		t.Fatal(err)
	}
	w, err := cfg.ParseRiskWeights()
	if err != nil || w["extra_person"] != 50 || w["distance"] != 0 || len(w) != 2 {
		t.Fatalf("weights %v, %v", w, err)
	}
	for _, bad := range []string{"extra_person", "x=abc", "=3", "x=-1", "x=101"} {
		if _, err := resolve(t, nil, map[string]string{"INVIGIL_RISK_WEIGHTS": bad}); err == nil {
			t.Errorf("risk weights %q accepted", bad)
		}
	}
}

// The guessing limits, cookies and the metrics token come from the three
// sources like every setting, and values that cannot work are refused with
// the setting named.
func TestTrustSettings(t *testing.T) {
	file := writeFile(t, `{"code_failures_per_minute": 12, "login_attempts": 3, "metrics_token": "from-the-file-0123456789"}`)
	cfg, err := resolve(t, []string{"--config", file, "--login-network-attempts", "9", "--secure-cookies"},
		map[string]string{"INVIGIL_LOGIN_ATTEMPTS": "4"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.CodeFailuresPerMinute != 12 || cfg.LoginAttempts != 4 || cfg.LoginNetworkAttempts != 9 || !cfg.SecureCookies ||
		cfg.MetricsToken != "from-the-file-0123456789" {
		t.Errorf("got %+v", cfg)
	}
	cfg, err = resolve(t, nil, map[string]string{"INVIGIL_SECURE_COOKIES": "true", "INVIGIL_METRICS_TOKEN": "from-the-env-0123456789"})
	if err != nil || !cfg.SecureCookies || cfg.MetricsToken != "from-the-env-0123456789" {
		t.Errorf("from env: %+v, %v", cfg, err)
	}
	for _, c := range []struct {
		args []string
		vars map[string]string
		want string
	}{
		{[]string{"--code-failures-per-minute", "0"}, nil, "code failures per minute"},
		{nil, map[string]string{"INVIGIL_LOGIN_ATTEMPTS": "0"}, "login attempts"},
		{[]string{"--login-network-attempts", "-1"}, nil, "login network attempts"},
		{[]string{"--metrics-token", "short"}, nil, "metrics token"},
		{nil, map[string]string{"INVIGIL_SECURE_COOKIES": "sometimes"}, "INVIGIL_SECURE_COOKIES"},
	} {
		if _, err := resolve(t, c.args, c.vars); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v %v: error %v, want it to mention %q", c.args, c.vars, err, c.want)
		}
	}
}

func TestDatabaseURL(t *testing.T) {
	const fromFile = "postgres://invigil:pw@db.example:5432/invigil?sslmode=require"
	file := writeFile(t, `{"database_url": "`+fromFile+`"}`)
	cfg, err := resolve(t, []string{"--config", file}, nil)
	if err != nil || cfg.DatabaseURL != fromFile {
		t.Errorf("from the file: %q, %v", cfg.DatabaseURL, err)
	}
	cfg, err = resolve(t, []string{"--config", file}, map[string]string{"INVIGIL_DATABASE_URL": "postgresql://env@db/invigil"})
	if err != nil || cfg.DatabaseURL != "postgresql://env@db/invigil" {
		t.Errorf("from env over the file: %q, %v", cfg.DatabaseURL, err)
	}
	cfg, err = resolve(t, []string{"--database-url", "postgres://flag@db/invigil"}, map[string]string{"INVIGIL_DATABASE_URL": "postgresql://env@db/invigil"})
	if err != nil || cfg.DatabaseURL != "postgres://flag@db/invigil" {
		t.Errorf("from the flag over env: %q, %v", cfg.DatabaseURL, err)
	}
	if cfg, err := resolve(t, nil, nil); err != nil || cfg.DatabaseURL != "" {
		t.Errorf("default: %q, %v (want empty: the SQLite file)", cfg.DatabaseURL, err)
	}
	for _, bad := range []string{
		"mysql://u:secret-pw@db/invigil",
		"/srv/invigil.db",
		"postgres://u:secret-pw@db:port/invigil",
		"postgres:///invigil",
	} {
		_, err := resolve(t, []string{"--database-url", bad}, nil)
		if err == nil || !strings.Contains(err.Error(), "database url") {
			t.Errorf("%s: error %v, want one about the database url", bad, err)
			continue
		}
		if strings.Contains(err.Error(), "secret-pw") {
			t.Errorf("%s: the error shows the password: %v", bad, err)
		}
	}
}

func TestNATSURL(t *testing.T) {
	file := writeFile(t, `{"nats_url": "nats://file.example:4222"}`)
	cfg, err := resolve(t, []string{"--config", file}, nil)
	if err != nil || cfg.NATSURL != "nats://file.example:4222" {
		t.Errorf("from the file: %q, %v", cfg.NATSURL, err)
	}
	cfg, err = resolve(t, []string{"--config", file}, map[string]string{"INVIGIL_NATS_URL": "nats://env.example:4222"})
	if err != nil || cfg.NATSURL != "nats://env.example:4222" {
		t.Errorf("from env over the file: %q, %v", cfg.NATSURL, err)
	}
	cfg, err = resolve(t, []string{"--nats-url", "nats://a:4222,nats://b:4222"}, map[string]string{"INVIGIL_NATS_URL": "nats://env.example:4222"})
	if err != nil || cfg.NATSURL != "nats://a:4222,nats://b:4222" {
		t.Errorf("from the flag over env (two servers): %q, %v", cfg.NATSURL, err)
	}
	if cfg, err := resolve(t, nil, nil); err != nil || cfg.NATSURL != "" {
		t.Errorf("default: %q, %v (want empty: inside the process)", cfg.NATSURL, err)
	}
	for _, bad := range []string{"http://u:secret-pw@nats:4222", "nats://", "localhost:4222", "nats://u:secret-pw@host:port"} {
		_, err := resolve(t, []string{"--nats-url", bad}, nil)
		if err == nil || !strings.Contains(err.Error(), "nats url") {
			t.Errorf("%s: error %v, want one about the nats url", bad, err)
			continue
		}
		if strings.Contains(err.Error(), "secret-pw") {
			t.Errorf("%s: the error shows the password: %v", bad, err)
		}
	}
}

func TestNodeID(t *testing.T) {
	cfg, err := resolve(t, []string{"--node-id", "media-2"}, map[string]string{"INVIGIL_NODE_ID": "media-1"})
	if err != nil || cfg.NodeID != "media-2" || cfg.NodeName() != "media-2" {
		t.Errorf("from the flag over env: %q, %v", cfg.NodeID, err)
	}
	cfg, err = resolve(t, nil, nil)
	if err != nil || cfg.NodeID != "" {
		t.Fatalf("default: %q, %v (want empty: the host name)", cfg.NodeID, err)
	}
	host, _ := os.Hostname()
	if name := cfg.NodeName(); name == "" || !validNodeID(name) || (validNodeID(host) && name != host) {
		t.Errorf("default node name %q (host %q)", name, host)
	}
	for _, bad := range []string{"-media", "media 1", "médias", "a/b", "media.1", strings.Repeat("n", 64)} {
		if _, err := resolve(t, []string{"--node-id", bad}, nil); err == nil || !strings.Contains(err.Error(), "node id") {
			t.Errorf("%q: error %v, want one about the node id", bad, err)
		}
	}
}

func TestRoles(t *testing.T) {
	several := []string{"--nats-url", "nats://127.0.0.1:4222", "--database-url", "postgres://u@db/invigil"}
	key := map[string]string{"INVIGIL_CLUSTER_KEY": "a-cluster-key-0123456789"}
	for _, role := range []string{"control", "media"} {
		cfg, err := resolve(t, append([]string{"--role", role, "--advertise-url", "https://media-1.example:8443", "--capacity", "40"}, several...), key)
		if err != nil || cfg.NodeRole() != role || cfg.AdvertiseURL != "https://media-1.example:8443" || cfg.Capacity != 40 ||
			cfg.ClusterKey != key["INVIGIL_CLUSTER_KEY"] {
			t.Errorf("role %s: %+v, %v", role, cfg, err)
		}
		if _, err := resolve(t, []string{"--role", role}, nil); err == nil || !strings.Contains(err.Error(), "--nats-url") {
			t.Errorf("role %s alone: %v, want an error saying it needs NATS and PostgreSQL", role, err)
		}
		// Without the shared secret a node could neither fetch other
		// nodes' files nor guard its own.
		if _, err := resolve(t, append([]string{"--role", role}, several...), nil); err == nil || !strings.Contains(err.Error(), "--cluster-key") {
			t.Errorf("role %s without a cluster key: %v, want an error naming --cluster-key", role, err)
		}
		if _, err := resolve(t, append([]string{"--role", role, "--cluster-key", "short"}, several...), nil); err == nil || !strings.Contains(err.Error(), "cluster key") {
			t.Errorf("role %s with a short cluster key: %v, want an error about its length", role, err)
		}
	}
	if cfg, err := resolve(t, []string{"--internal-url", "http://media-1:8080"}, nil); err != nil || cfg.InternalURL != "http://media-1:8080" {
		t.Errorf("internal url: %q, %v", cfg.InternalURL, err)
	}
	if cfg, err := resolve(t, []string{"--cluster-key", "from-the-flag-0123456789"}, key); err != nil || cfg.ClusterKey != "from-the-flag-0123456789" {
		t.Errorf("cluster key from the flag over env: %q, %v", cfg.ClusterKey, err)
	}
	if cfg, err := resolve(t, []string{"--sfu-origins", " exam.example.org, *.example.org ,"}, nil); err != nil ||
		len(cfg.OriginPatterns()) != 2 || cfg.OriginPatterns()[1] != "*.example.org" {
		t.Errorf("sfu origins: %v, %v", cfg.OriginPatterns(), err)
	}
	if cfg, err := resolve(t, nil, nil); err != nil || cfg.NodeRole() != "all" {
		t.Errorf("default role: %q, %v", cfg.NodeRole(), err)
	}
	for _, bad := range [][]string{{"--role", "both"}, {"--advertise-url", "media-1:8443"}, {"--advertise-url", "https://m/sfu"}, {"--capacity", "-1"},
		{"--internal-url", "media-1:8080"}, {"--internal-url", "ftp://media-1"}, {"--internal-url", "http://media-1/files"}} {
		if _, err := resolve(t, bad, nil); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}
