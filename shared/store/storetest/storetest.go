// Package storetest is the conformance suite every store.Store passes: the
// embedded SQLite store always, DynamoDB against an emulator when CI
// provides one. A store that passes it may be swapped for another without a
// handler noticing.
//
// What the suite pins down beyond the comments in package store:
//
//   - Time precision: stores keep instants to the millisecond at least. The
//     suite builds its fixtures at whole milliseconds and compares instants
//     within a millisecond, ignoring their location.
//   - Empty and nil slices and maps are equal (a store may drop an empty list).
//   - Lists run newest (or oldest) first by time, ties broken by id in the
//     same direction; ids from kve.NewID sort by creation time, so a store
//     that sorts by id alone agrees. Since filters are inclusive.
//   - Token.Version changes on every UpdateToken and on a RotateKey of the
//     token's key; its value is the store's. Token.Spend is TokenByHash's
//     alone: the suite ignores it everywhere else.
//   - A token's LastUsed only moves forward.
//
// Everything runs on a fixed clock except today's spend, which a store can
// only know from the wall clock.
package storetest

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

// Run runs the suite. open returns a fresh, empty store for each subtest and
// registers its own cleanup (closing the store, dropping the table).
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	groups := []struct {
		name  string
		tests []test
	}{
		{"Setup", setupTests()},
		{"Sessions", sessionTests()},
		{"Orgs", orgTests()},
		{"Invites", inviteTests()},
		{"Members", memberTests()},
		{"Keys", keyTests()},
		{"Tokens", tokenTests()},
		{"Audit", auditTests()},
		{"Usage", usageTests()},
		{"Metering", meteringTests()},
		{"Budgets", budgetTests()},
		{"Scoping", scopingTests()},
		{"Alerts", alertTests()},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			for _, tt := range g.tests {
				t.Run(tt.name, func(t *testing.T) {
					tt.run(t, newFixture(t, open(t)))
				})
			}
		})
	}
}

// test is one subtest of a group.
type test struct {
	name string
	run  func(t *testing.T, f *fixture)
}

// cmpOptions compares what the suite writes with what a store reads back,
// under the precision rules of the package comment.
func cmpOptions(extra ...cmp.Option) cmp.Options {
	return append(cmp.Options{
		cmpopts.EquateApproxTime(time.Millisecond),
		cmpopts.EquateEmpty(),
		cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
	}, extra...)
}

// ignoreTokenState leaves out what a store sets on its own.
var ignoreTokenState = cmpopts.IgnoreFields(kve.Token{}, "Version", "Spend")

// same fails the test when got differs from want.
func same[T any](t *testing.T, what string, got, want T, extra ...cmp.Option) {
	t.Helper()
	if diff := cmp.Diff(want, got, cmpOptions(extra...)); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", what, diff)
	}
}

// must takes a call's results and, given the test, returns the value or
// fails the test at once: must(f.s.Org(ctx, id))(t).
func must[T any](v T, err error) func(t *testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return v
	}
}

// ok fails the test at once on err.
func ok(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
}

// wantKind fails the test unless err is of the given kind.
func wantKind(t *testing.T, what string, err error, want kve.Kind) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: error = nil, want kind %v", what, want)
		return
	}
	if got := kve.KindOf(err); got != want {
		t.Errorf("%s: error = %v (kind %v), want kind %v", what, err, got, want)
	}
}

// notNil fails the test when a list is nil: lists are never nil.
func notNil[T any](t *testing.T, what string, list []T) {
	t.Helper()
	if list == nil {
		t.Errorf("%s: list is nil, want an empty slice", what)
	}
}
