package contract

import (
	"strings"
	"testing"
)

func TestIdentitiesRoundTrip(t *testing.T) {
	for _, id := range []int64{1, 42, 1 << 40} {
		if got, ok := ParseCandidateIdentity(CandidateIdentity(id)); !ok || got != id {
			t.Errorf("candidate %d: parsed back as %d %v", id, got, ok)
		}
		if got, ok := ParseStaffIdentity(StaffIdentity(id)); !ok || got != id {
			t.Errorf("staff %d: parsed back as %d %v", id, got, ok)
		}
		if !IsExamRoom(ExamRoom(id)) {
			t.Errorf("%s is not an exam room", ExamRoom(id))
		}
	}
	for _, bad := range []string{"candidate-", "candidate-0", "candidate--1", "candidate-01", "candidate-x", "staff-1", "load-1", "candidate-1 ", ""} {
		if id, ok := ParseCandidateIdentity(bad); ok {
			t.Errorf("%q parsed as candidate %d", bad, id)
		}
	}
	if _, ok := ParseStaffIdentity("candidate-3"); ok {
		t.Error("a candidate's identity parsed as staff")
	}
	if IsExamRoom(LoadIdentityPrefix + "room") {
		t.Error("a load-test room counted as an exam's")
	}
}

func TestViolationTypes(t *testing.T) {
	seen := map[string]bool{}
	for _, v := range ViolationTypes {
		if seen[v.Name] || v.Name == "" || SourceOf(v.Name) != v.Source {
			t.Errorf("type %+v: duplicate, empty or not found", v)
		}
		seen[v.Name] = true
	}
	if SourceOf("nonsense") != "" {
		t.Error("an unknown type has a source")
	}
	all, policy, browser := ViolationNames(), ViolationNames(SourceCamera, SourceMicrophone), ViolationNames(SourceBrowser)
	if len(all) != len(ViolationTypes) || len(policy)+len(browser) != len(all) {
		t.Errorf("%d types: %d policy and %d browser", len(all), len(policy), len(browser))
	}
	js := JavaScript()
	for _, name := range all {
		if !strings.Contains(js, `"`+name+`"`) {
			t.Errorf("the pages' module lacks %s", name)
		}
	}
}
