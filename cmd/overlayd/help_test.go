package main

import (
	"bytes"
	"context"
	"debug/elf"
	"flag"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestHelpDescribesEveryFlag runs `overlayd CMD --help` for every command
// and checks that every flag the command registers (its own and the global
// ones) appears with its description, and that `overlayd --help` lists
// every command and describes every global flag.
func TestHelpDescribesEveryFlag(t *testing.T) {
	seen := map[string]*flag.FlagSet{}
	inspectFlags = func(cmd string, fs *flag.FlagSet) { seen[cmd] = fs }
	t.Cleanup(func() { inspectFlags = nil })

	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, name := range names {
		for _, h := range []string{"--help", "-h"} {
			t.Run(name+h, func(t *testing.T) {
				var stdout, stderr bytes.Buffer
				if code := runMain(context.Background(), []string{name, h}, &stdout, &stderr); code != 0 {
					t.Fatalf("exit %d, want 0; stderr:\n%s", code, stderr.String())
				}
				help := stdout.String() + stderr.String()
				if !strings.Contains(help, "Usage: overlayd "+name) {
					t.Errorf("help does not start with a usage line for %s:\n%s", name, help)
				}
				fs := seen[name]
				if fs == nil {
					t.Fatalf("command %s did not report its flag set", name)
				}
				n := 0
				fs.VisitAll(func(f *flag.Flag) {
					n++
					if !strings.Contains(help, "-"+f.Name) {
						t.Errorf("flag --%s missing from help:\n%s", f.Name, help)
					}
					if !strings.Contains(help, firstLine(f.Usage)) {
						t.Errorf("description of --%s (%q) missing from help", f.Name, f.Usage)
					}
				})
				for _, g := range []string{"netns-dir", "state-dir", "store", "log-level", "log-json"} {
					if fs.Lookup(g) == nil {
						t.Errorf("global flag --%s not accepted by %s", g, name)
					}
				}
				if n < 5 {
					t.Errorf("only %d flags registered", n)
				}
			})
		}
	}

	t.Run("overlayd --help", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		if code := runMain(context.Background(), []string{"--help"}, &stdout, &stderr); code != 0 {
			t.Fatalf("exit %d", code)
		}
		help := stdout.String()
		for _, name := range names {
			if !strings.Contains(help, "  "+name+" ") {
				t.Errorf("command %s missing from overlayd --help:\n%s", name, help)
			}
			if syn := commands[name].synopsis; syn != "" && !strings.Contains(help, syn) {
				t.Errorf("synopsis of %s missing from overlayd --help", name)
			}
		}
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		new(globalFlags).bind(fs)
		fs.VisitAll(func(f *flag.Flag) {
			if !strings.Contains(help, "-"+f.Name) || !strings.Contains(help, firstLine(f.Usage)) {
				t.Errorf("global flag --%s not described in overlayd --help:\n%s", f.Name, help)
			}
		})
	})

	// The create and attach flags, by name: a renamed flag fails here.
	want := map[string][]string{
		"create": {"vni", "port", "mtu", "gateway", "local", "dev", "learning", "overlay-netns", "bridge", "vxlan"},
		"attach": {"ip", "mac", "ifname"},
		"status": {"json"},
	}
	for cmd, flags := range want {
		for _, f := range flags {
			if seen[cmd] == nil || seen[cmd].Lookup(f) == nil {
				t.Errorf("overlayd %s has no --%s", cmd, f)
			}
		}
	}
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// TestUsageErrors checks the exit status and message of calls that are
// wrong before anything is looked at (no root needed).
func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{}, 2, "Usage: overlayd COMMAND"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"create", "--vni", "0"}, 2, "--vni 0: out of range 1..16777215"},
		{[]string{"create", "--vni", "16777216"}, 2, "--vni 16777216: out of range"},
		{[]string{"create", "--vni", "-1"}, 2, "invalid value"},
		{[]string{"create", "--port", "0"}, 2, "--port 0: out of range 1..65535"},
		{[]string{"create", "--port", "65536"}, 2, "--port 65536"},
		{[]string{"create", "--mtu", "67"}, 2, "--mtu 67: out of range 68.."},
		{[]string{"create", "--gateway", "198.51.100.1"}, 2, `--gateway "198.51.100.1"`},
		{[]string{"create", "--gateway", "198.51.100.0/24"}, 2, "network address"},
		{[]string{"create", "--local", "192.0.2.300"}, 2, `--local "192.0.2.300"`},
		{[]string{"create", "--local", "192.0.2.2", "--dev", "eth1"}, 2, "exclusive"},
		{[]string{"create", "--overlay-netns", "a/b"}, 2, "'/'"},
		{[]string{"create", "--overlay-netns", ".."}, 2, `".." is not allowed`},
		{[]string{"create", "--overlay-netns", strings.Repeat("n", 256)}, 2, "longer than"},
		{[]string{"create", "--bridge", "a-very-long-bridge-name"}, 2, "longer than the kernel's 15"},
		{[]string{"create", "extra"}, 2, `unexpected arguments ["extra"]`},
		{[]string{"create", "--log-level", "loud"}, 2, "--log-level"},
		{[]string{"attach", "--ip", "198.51.100.2/24"}, 2, "NAME (the container's netns name) is required"},
		{[]string{"attach", "pink", "--block-bits", "33"}, 2, "--block-bits 33: want 1..32"},
		{[]string{"attach", "pink", "sky", "--ip", "198.51.100.2/24"}, 2, "one NAME expected"},
		{[]string{"attach", "pink", "--ip", "198.51.100.2/24", "--mac", "02:42:zz:33:64:02"}, 2, "not a MAC address"},
		{[]string{"attach", "pink", "--ip", "198.51.100.2/24", "--mac", "02:42:c6:33:64"}, 2, "not a MAC address"},
		{[]string{"attach", "pink", "--ip", "198.51.100.2/24", "--mac", "00:00:00:00:00:00"}, 2, "all-zero"},
		{[]string{"attach", "pink", "--ip", "198.51.100.2/24", "--mac", "03:42:c6:33:64:02"}, 2, "multicast"},
		{[]string{"attach", "pink", "--ip", "198.51.100.2/24", "--mac", "ff:ff:ff:ff:ff:ff"}, 2, "multicast"},
		{[]string{"attach", "a/b", "--ip", "198.51.100.2/24"}, 2, "'/'"},
		{[]string{"attach", "..", "--ip", "198.51.100.2/24"}, 2, `".." is not allowed`},
		{[]string{"attach", "x..y", "--ip", "198.51.100.2/24"}, 2, `contains ".."`},
		{[]string{"attach", strings.Repeat("c", 256), "--ip", "198.51.100.2/24"}, 2, "longer than"},
		{[]string{"attach", "pink", "--ip", "198.51.100.2/33"}, 2, `--ip "198.51.100.2/33"`},
		{[]string{"attach", "pink", "--ip", "pink"}, 2, `--ip "pink"`},
		{[]string{"attach", "pink", "--bogus"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"detach"}, 2, "NAME (the container's netns name) is required"},
		{[]string{"status", "now"}, 2, "unexpected arguments"},
		{[]string{"reset", "all"}, 2, "unexpected arguments"},
	}
	for _, tt := range tests {
		name := strings.Join(tt.args, " ")
		if len(name) > 60 {
			name = name[:60] + "..."
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			args := tt.args
			if len(args) > 0 && commands[args[0]] != nil {
				// Keep any accidental effect inside the temp dir.
				args = append([]string{args[0], "--netns-dir", dir + "/netns", "--state-dir", dir + "/state", "--store", "dir:" + dir + "/store"}, args[1:]...)
			}
			var stdout, stderr bytes.Buffer
			code := runMain(context.Background(), args, &stdout, &stderr)
			out := stdout.String() + stderr.String()
			if code != tt.code {
				t.Errorf("exit %d, want %d; output:\n%s", code, tt.code, out)
			}
			if !strings.Contains(out, tt.msg) {
				t.Errorf("output does not contain %q:\n%s", tt.msg, out)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Errorf("a usage error created %v", ents)
			}
		})
	}
}

// TestParseInterspersed checks that flags may come before and after NAME.
func TestParseInterspersed(t *testing.T) {
	tests := []struct {
		args []string
		ip   string
		pos  []string
	}{
		{[]string{"pink", "--ip", "198.51.100.2/24"}, "198.51.100.2/24", []string{"pink"}},
		{[]string{"--ip", "198.51.100.2/24", "pink"}, "198.51.100.2/24", []string{"pink"}},
		{[]string{"--ip=198.51.100.2/24", "pink", "-v"}, "198.51.100.2/24", []string{"pink"}},
		{[]string{"pink", "--ip", "x", "sky", "-v"}, "x", []string{"pink", "sky"}},
		{[]string{"-v", "--", "--ip"}, "", []string{"--ip"}},
		{[]string{"pink", "--", "-v"}, "", []string{"pink", "-v"}},
		{nil, "", nil},
	}
	for _, tt := range tests {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		ip := fs.String("ip", "", "")
		fs.Bool("v", false, "")
		pos, err := parseInterspersed(fs, tt.args)
		if err != nil {
			t.Errorf("%q: %v", tt.args, err)
			continue
		}
		if *ip != tt.ip || !slices.Equal(pos, tt.pos) {
			t.Errorf("%q: ip %q pos %q, want %q %q", tt.args, *ip, pos, tt.ip, tt.pos)
		}
	}
}

// TestBinaryIsStatic checks that the binary `make build` makes
// (CGO_ENABLED=0, -trimpath, -ldflags='-s -w') needs no dynamic loader or
// shared library, so it runs on an appliance without libc or iproute2.
func TestBinaryIsStatic(t *testing.T) {
	bin := overlaydBinary(t)
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("binary has a PT_INTERP program header: dynamically linked")
		}
		if p.Type == elf.PT_DYNAMIC {
			t.Errorf("binary has a PT_DYNAMIC program header")
		}
	}
	if libs, err := f.ImportedLibraries(); err == nil && len(libs) > 0 {
		t.Errorf("binary needs shared libraries %v", libs)
	}
	if f.Section(".symtab") != nil {
		t.Errorf("binary is not stripped (-s)")
	}
	st, err := os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("static overlayd: %d bytes (%.1f MiB)", st.Size(), float64(st.Size())/(1<<20))
	if out, err := exec.Command(bin, "--help").Output(); err != nil || !strings.Contains(string(out), "Usage: overlayd") {
		t.Errorf("overlayd --help: %v\n%s", err, out)
	}
}
