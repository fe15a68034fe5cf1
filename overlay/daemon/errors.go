package daemon

import (
	"errors"
	"strconv"
)

// ErrNoFeed is returned when a proactive or hybrid mode is asked of a store
// that has no change feed (the directory store).
var ErrNoFeed = errors.New("daemon: proactive and hybrid modes need a store with a change feed (etcd://...)")

// Setting names the Config setting a SettingError is about.
type Setting uint8

// Settings of a SettingError.
const (
	// SettingStore is Config.Store: the store could not be opened.
	SettingStore Setting = iota + 1
	// SettingStateDir is the state directory of Config.Node: the overlay
	// it records differs from the one recorded in the store.
	SettingStateDir
	// SettingMetricsAddr is Config.MetricsAddr: the metrics cannot be
	// served there.
	SettingMetricsAddr
)

// String names s in words.
func (s Setting) String() string {
	switch s {
	case SettingStore:
		return "store"
	case SettingStateDir:
		return "state directory"
	case SettingMetricsAddr:
		return "metrics address"
	}
	return "Setting(" + strconv.Itoa(int(s)) + ")"
}

// SettingError is an error of New caused by one setting of its Config, so
// that a caller can name the setting as its user knows it (a command-line
// flag).
type SettingError struct {
	// Setting is the setting at fault.
	Setting Setting
	// Value is the setting's value, when Err does not name it ("" for the
	// store, whose errors name its URL without a password).
	Value string
	// Err is what went wrong.
	Err error
}

// Error reads "daemon: SETTING [VALUE]: ERR".
func (e *SettingError) Error() string {
	s := "daemon: " + e.Setting.String()
	if e.Value != "" {
		s += " " + e.Value
	}
	return s + ": " + e.Err.Error()
}

// Unwrap returns Err.
func (e *SettingError) Unwrap() error { return e.Err }
