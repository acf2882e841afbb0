package manage

import (
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
)

var errUnusable = kve.Errorf(kve.KindInvalid, "invalid_policy", "a token needs browser origins, allow_server, or both")

// checkPolicy parses the lists of a token's policy into canonical form.
func checkPolicy(origins, ips, paths []string) (kve.Policy, error) {
	var pol kve.Policy
	if len(origins) > maxListItems || len(ips) > maxListItems || len(paths) > maxListItems {
		return pol, kve.Errorf(kve.KindInvalid, "too_many", "a token holds at most %d origins, IP ranges or path rules each", maxListItems)
	}
	var err error
	if pol.Origins, err = parseOrigins(origins); err != nil {
		return pol, err
	}
	if pol.IPs, err = kve.ParsePrefixes(ips); err != nil {
		return pol, err
	}
	if pol.Paths, err = parsePaths(paths); err != nil {
		return pol, err
	}
	return pol, nil
}

func parseOrigins(list []string) ([]kve.Origin, error) {
	out := make([]kve.Origin, 0, len(list))
	seen := map[string]bool{}
	for _, s := range list {
		o, err := kve.ParseOriginPattern(s)
		if err != nil {
			return nil, err
		}
		if !seen[o.String()] {
			seen[o.String()] = true
			out = append(out, o)
		}
	}
	return out, nil
}

func parsePaths(list []string) ([]kve.PathRule, error) {
	out := make([]kve.PathRule, 0, len(list))
	for _, s := range list {
		r, err := kve.ParsePathRule(s)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// setLimits applies the rate and budget that are set.
func setLimits(pol *kve.Policy, rpm *int, budgetUSD *float64) error {
	if rpm != nil {
		if *rpm < 0 || *rpm > maxRPM {
			return kve.Errorf(kve.KindInvalid, "invalid_rpm", "rpm must be 0 (unlimited) to %d", maxRPM)
		}
		pol.RPM = *rpm
	}
	if budgetUSD != nil {
		if !(*budgetUSD >= 0 && *budgetUSD <= maxBudgetUSD) {
			return kve.Errorf(kve.KindInvalid, "invalid_budget", "budget_usd must be 0 (unlimited) to %d", maxBudgetUSD)
		}
		pol.BudgetMicro = int64(math.Round(*budgetUSD * 1e6))
	}
	return nil
}

// parseTTL reads a lifetime such as "30d", "12h" or "90m"; "" is 0 (unset).
func parseTTL(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	var d time.Duration
	var err error
	if days, ok := strings.CutSuffix(s, "d"); ok {
		var n int
		if n, err = strconv.Atoi(days); err == nil && n > 0 && n <= 10*366 {
			d = time.Duration(n) * 24 * time.Hour
		}
	} else {
		d, err = time.ParseDuration(s)
	}
	if err != nil || d < time.Minute || d > maxTTL {
		return 0, kve.Errorf(kve.KindInvalid, "invalid_expires_in", "expires_in must be a lifetime like 30d or 12h, at least 1m")
	}
	return d, nil
}
