package config

import (
	"encoding/base64"
	"strings"
)

// Fleet lets replicas behind one load balancer serve each other's legacy sessions (see
// package fleet). Empty: the gateway runs alone, or behind a load balancer with session
// affinity.
type Fleet struct {
	// Advertise is the base URL the other replicas reach this one at, e.g.
	// http://${POD_IP}:8931. ${VAR} and ${file:PATH} are expanded.
	Advertise string `yaml:"advertise"`
	// Key is the secret all replicas share, base64 (32 bytes or more); ${VAR} and
	// ${file:PATH} are expanded.
	Key string `yaml:"key"`

	// KeyBytes is Key decoded.
	KeyBytes []byte `yaml:"-"`
}

func (c *Config) validateFleet() []error {
	f := &c.Fleet
	if f.Advertise == "" && f.Key == "" {
		return nil
	}
	var errs []error
	if f.Advertise == "" {
		errs = append(errs, c.at("a fleet needs advertise: the base URL other replicas reach this one at (http://${POD_IP}:8931)", "fleet", "advertise"))
	} else if v, err := c.expand(f.Advertise); err != nil {
		errs = append(errs, c.at(err.Error(), "fleet", "advertise"))
	} else {
		f.Advertise = v
	}
	if f.Key == "" {
		errs = append(errs, c.at("a fleet needs key: a shared secret of 32 bytes or more, base64 (head -c 32 /dev/urandom | base64)", "fleet", "key"))
		return errs
	}
	v, err := c.expand(f.Key)
	if err != nil {
		return append(errs, c.at(err.Error(), "fleet", "key"))
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(v))
	if err != nil {
		return append(errs, c.at("not base64: "+err.Error(), "fleet", "key"))
	}
	if len(b) < 32 {
		return append(errs, c.at("too short: the key needs 32 bytes or more (head -c 32 /dev/urandom | base64)", "fleet", "key"))
	}
	f.KeyBytes = b
	return errs
}
