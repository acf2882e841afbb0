package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
)

func setupTests() []test {
	return []test{
		{"once", func(t *testing.T, f *fixture) {
			if done := must(f.s.SetupDone(f.ctx))(t); done {
				t.Fatal("SetupDone = true on an empty store")
			}
			u, ses := f.setup()
			if done := must(f.s.SetupDone(f.ctx))(t); !done {
				t.Error("SetupDone = false after CompleteSetup")
			}
			same(t, "User", must(f.s.User(f.ctx, u.ID))(t), u)
			same(t, "UserByEmail", must(f.s.UserByEmail(f.ctx, u.Email))(t), u)
			same(t, "SessionByHash", must(f.s.SessionByHash(f.ctx, ses.Hash))(t), ses)

			second := f.newUser("second")
			secondSes := f.newSession(second.ID, kve.SessionBrowser, f.at(time.Second))
			wantKind(t, "second CompleteSetup", f.s.CompleteSetup(f.ctx, second, secondSes), kve.KindConflict)
			_, err := f.s.User(f.ctx, second.ID)
			wantKind(t, "User of refused setup", err, kve.KindNotFound)
			_, err = f.s.UserByEmail(f.ctx, second.Email)
			wantKind(t, "UserByEmail of refused setup", err, kve.KindNotFound)
			_, err = f.s.SessionByHash(f.ctx, secondSes.Hash)
			wantKind(t, "SessionByHash of refused setup", err, kve.KindNotFound)
		}},
		{"same email twice", func(t *testing.T, f *fixture) {
			u, _ := f.setup()
			again := f.newUser("again")
			again.Email = u.Email
			err := f.s.CompleteSetup(f.ctx, again, f.newSession(again.ID, kve.SessionBrowser, f.now))
			wantKind(t, "CompleteSetup with a taken email", err, kve.KindConflict)
			same(t, "UserByEmail", must(f.s.UserByEmail(f.ctx, u.Email))(t), u)
			_, err = f.s.User(f.ctx, again.ID)
			wantKind(t, "User of refused setup", err, kve.KindNotFound)
		}},
		{"exactly once under 20 concurrent calls", func(t *testing.T, f *fixture) {
			const n = 20
			users := make([]kve.User, n)
			sessions := make([]kve.Session, n)
			for i := range users {
				users[i] = f.newUser("racer")
				sessions[i] = f.newSession(users[i].ID, kve.SessionBrowser, f.now)
			}
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() { errs[i] = f.s.CompleteSetup(f.ctx, users[i], sessions[i]) })
			}
			wg.Wait()
			winner := -1
			for i, err := range errs {
				if err == nil {
					if winner >= 0 {
						t.Fatalf("CompleteSetup succeeded twice (calls %d and %d)", winner, i)
					}
					winner = i
					continue
				}
				wantKind(t, "losing CompleteSetup", err, kve.KindConflict)
			}
			if winner < 0 {
				t.Fatal("no CompleteSetup succeeded")
			}
			if done := must(f.s.SetupDone(f.ctx))(t); !done {
				t.Error("SetupDone = false after a successful CompleteSetup")
			}
			for i, u := range users {
				got, err := f.s.UserByEmail(f.ctx, u.Email)
				if i == winner {
					same(t, "winner", got, u)
					same(t, "winner's session", must(f.s.SessionByHash(f.ctx, sessions[i].Hash))(t), sessions[i])
					continue
				}
				wantKind(t, "UserByEmail of a losing call", err, kve.KindNotFound)
				_, err = f.s.SessionByHash(f.ctx, sessions[i].Hash)
				wantKind(t, "SessionByHash of a losing call", err, kve.KindNotFound)
			}
		}},
		{"create user", func(t *testing.T, f *fixture) {
			u := f.newUser("solo")
			ok(t, f.s.CreateUser(f.ctx, u))
			same(t, "User", must(f.s.User(f.ctx, u.ID))(t), u)
			same(t, "UserByEmail", must(f.s.UserByEmail(f.ctx, u.Email))(t), u)
			same(t, "Memberships", must(f.s.Memberships(f.ctx, u.ID))(t), []kve.Membership{})
			again := f.newUser("again")
			again.Email = u.Email
			wantKind(t, "CreateUser with a taken email", f.s.CreateUser(f.ctx, again), kve.KindConflict)
			_, err := f.s.User(f.ctx, again.ID)
			wantKind(t, "User of the refused user", err, kve.KindNotFound)
		}},
		{"change password ends the other sessions", func(t *testing.T, f *fixture) {
			u, first := f.setup()
			var made []kve.Session
			for i := range 3 {
				s := f.newSession(u.ID, kve.SessionAPI, f.at(time.Duration(i+1)*time.Second))
				ok(t, f.s.CreateSession(f.ctx, s))
				made = append(made, s)
			}
			stranger := f.newUser("stranger")
			ok(t, f.s.CreateUser(f.ctx, stranger))
			theirs := f.newSession(stranger.ID, kve.SessionBrowser, f.now)
			ok(t, f.s.CreateSession(f.ctx, theirs)) // another user's session stays

			hash := []byte("$argon2id$v=19$m=19456,t=2,p=1$bmV3LXNhbHQ$bmV3LWhhc2gtZm9yLXRlc3Rz")
			n := must(f.s.ChangePassword(f.ctx, u.ID, hash, made[1].ID))(t)
			if n != 3 {
				t.Errorf("ChangePassword ended %d sessions, want 3", n)
			}
			u.Password = hash
			same(t, "User", must(f.s.User(f.ctx, u.ID))(t), u)
			same(t, "Sessions", must(f.s.Sessions(f.ctx, u.ID))(t), []kve.Session{made[1]})
			_, err := f.s.SessionByHash(f.ctx, first.Hash)
			wantKind(t, "SessionByHash of an ended session", err, kve.KindNotFound)
			same(t, "another user's session", must(f.s.SessionByHash(f.ctx, theirs.Hash))(t), theirs)

			_, err = f.s.ChangePassword(f.ctx, kve.NewID(kve.PrefixUser, f.now), hash, "")
			wantKind(t, "ChangePassword of an unknown user", err, kve.KindNotFound)
		}},
		{"unknown user", func(t *testing.T, f *fixture) {
			f.setup()
			_, err := f.s.User(f.ctx, kve.NewID(kve.PrefixUser, f.now))
			wantKind(t, "User", err, kve.KindNotFound)
			_, err = f.s.UserByEmail(f.ctx, "nobody@example.test")
			wantKind(t, "UserByEmail", err, kve.KindNotFound)
		}},
	}
}

func sessionTests() []test {
	return []test{
		{"round trip", func(t *testing.T, f *fixture) {
			u, _ := f.setup()
			org, _ := f.org("Acme")
			browser := f.newSession(u.ID, kve.SessionBrowser, f.at(time.Minute))
			api := f.newSession(u.ID, kve.SessionAPI, f.at(2*time.Minute))
			api.OrgID = org.ID
			api.ExpiresAt = time.Time{}
			for _, s := range []kve.Session{browser, api} {
				ok(t, f.s.CreateSession(f.ctx, s))
				same(t, "SessionByHash", must(f.s.SessionByHash(f.ctx, s.Hash))(t), s)
			}
		}},
		{"duplicate hash", func(t *testing.T, f *fixture) {
			u, first := f.setup()
			dup := f.newSession(u.ID, kve.SessionAPI, f.at(time.Minute))
			dup.Hash = first.Hash
			wantKind(t, "CreateSession with a taken hash", f.s.CreateSession(f.ctx, dup), kve.KindConflict)
			same(t, "SessionByHash", must(f.s.SessionByHash(f.ctx, first.Hash))(t), first)
		}},
		{"unknown hash", func(t *testing.T, f *fixture) {
			f.setup()
			_, err := f.s.SessionByHash(f.ctx, randomBytes(32))
			wantKind(t, "SessionByHash", err, kve.KindNotFound)
		}},
		{"touch", func(t *testing.T, f *fixture) {
			_, s := f.setup()
			ok(t, f.s.TouchSession(f.ctx, s.ID, f.at(time.Hour)))
			s.LastSeen = f.at(time.Hour)
			same(t, "touched session", must(f.s.SessionByHash(f.ctx, s.Hash))(t), s)
			wantKind(t, "TouchSession of an unknown id",
				f.s.TouchSession(f.ctx, kve.NewID(kve.PrefixSession, f.now), f.at(time.Hour)), kve.KindNotFound)
		}},
		{"list newest first", func(t *testing.T, f *fixture) {
			u, first := f.setup()
			var made []kve.Session
			for _, d := range []time.Duration{time.Second, 3 * time.Second, 2 * time.Second} {
				s := f.newSession(u.ID, kve.SessionAPI, f.at(d))
				ok(t, f.s.CreateSession(f.ctx, s))
				made = append(made, s)
			}
			want := []kve.Session{made[1], made[2], made[0], first}
			same(t, "Sessions", must(f.s.Sessions(f.ctx, u.ID))(t), want)

			none := must(f.s.Sessions(f.ctx, kve.NewID(kve.PrefixUser, f.now)))(t)
			notNil(t, "Sessions of a user without any", none)
			same(t, "Sessions of a user without any", none, []kve.Session{})
		}},
		{"delete", func(t *testing.T, f *fixture) {
			u, first := f.setup()
			s := f.newSession(u.ID, kve.SessionAPI, f.at(time.Second))
			ok(t, f.s.CreateSession(f.ctx, s))

			other := kve.NewID(kve.PrefixUser, f.now)
			wantKind(t, "DeleteSession by another user", f.s.DeleteSession(f.ctx, other, s.ID), kve.KindNotFound)
			same(t, "session after a refused delete", must(f.s.SessionByHash(f.ctx, s.Hash))(t), s)

			ok(t, f.s.DeleteSession(f.ctx, u.ID, s.ID))
			_, err := f.s.SessionByHash(f.ctx, s.Hash)
			wantKind(t, "SessionByHash after delete", err, kve.KindNotFound)
			same(t, "Sessions after delete", must(f.s.Sessions(f.ctx, u.ID))(t), []kve.Session{first})
			wantKind(t, "second DeleteSession", f.s.DeleteSession(f.ctx, u.ID, s.ID), kve.KindNotFound)
		}},
	}
}
