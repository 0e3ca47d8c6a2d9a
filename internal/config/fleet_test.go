package config

import (
	"strings"
	"testing"
)

func TestFleet(t *testing.T) {
	t.Setenv("TEST_POD_IP", "10.1.2.3")
	key := "a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5"
	c, err := Parse("gw.yaml", []byte("auth: none\nservers: [{name: a, command: x}]\nfleet: {advertise: \"http://${TEST_POD_IP}:8931\", key: "+key+"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Fleet.Advertise != "http://10.1.2.3:8931" || len(c.Fleet.KeyBytes) != 33 {
		t.Fatalf("fleet = %+v", c.Fleet)
	}
	for _, tc := range []struct{ fleet, want string }{
		{"{key: " + key + "}", "gw.yaml:3:1: fleet.advertise"},
		{"{advertise: http://h:1}", "fleet.key: a fleet needs key"},
		{"{advertise: http://h:1, key: '%%%'}", "fleet.key: not base64"},
		{"{advertise: http://h:1, key: a2V5}", "fleet.key: too short"},
		{"{advertise: http://h:1, key: " + key + ", peers: []}", "gw.yaml:3: fleet.peers: unknown field in fleet"},
	} {
		_, err := Parse("gw.yaml", []byte("auth: none\nservers: [{name: a, command: x}]\nfleet: "+tc.fleet+"\n"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("fleet: %s: %v, want %q", tc.fleet, err, tc.want)
		}
	}
}
