package usage

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"math"
	"strings"

	"github.com/keyvault-edge/kve/shared/kve"
)

//go:embed prices.json
var pricesJSON []byte

// Price is what a model costs, in USD per million tokens.
type Price struct {
	Provider string  `json:"provider"`
	Model    string  `json:"model"`
	Input    float64 `json:"input"`
	Cached   float64 `json:"cached"`
	Output   float64 `json:"output"`
}

// Prices is a dated price list. Models match by longest prefix, so
// "gpt-4o-mini-2024-07-18" is priced as "gpt-4o-mini".
type Prices struct {
	AsOf   string  `json:"as_of"`
	Models []Price `json:"models"`
	// ceiling per provider family: the most expensive entry, for unknown models
	ceiling map[kve.Family]Price
}

// DefaultPrices returns the embedded price list.
func DefaultPrices() *Prices {
	p, err := ParsePrices(pricesJSON)
	if err != nil {
		panic(fmt.Sprintf("usage: embedded prices: %v", err)) // a build-time fact, tested
	}
	return p
}

// ParsePrices reads a price list in the embedded format.
func ParsePrices(b []byte) (*Prices, error) {
	var p Prices
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("parse prices: %w", err)
	}
	p.ceiling = map[kve.Family]Price{}
	for _, m := range p.Models {
		if m.Input < 0 || m.Output < 0 || m.Cached < 0 || m.Model == "" {
			return nil, fmt.Errorf("parse prices: bad entry %q", m.Model)
		}
		prov, ok := kve.LookupProvider(m.Provider)
		if !ok {
			return nil, fmt.Errorf("parse prices: unknown provider %q", m.Provider)
		}
		if c := p.ceiling[prov.Family]; m.Input+m.Output > c.Input+c.Output {
			p.ceiling[prov.Family] = m
		}
	}
	return &p, nil
}

// Lookup returns the price of model at provider, and whether it was listed.
// An unlisted model of a known family is priced as the family's most
// expensive entry, so that naming an unknown model cannot dodge a budget.
func (p *Prices) Lookup(provider, model string) (Price, bool) {
	best := -1
	for i, m := range p.Models {
		if m.Provider == provider && strings.HasPrefix(model, m.Model) &&
			(best < 0 || len(m.Model) > len(p.Models[best].Model)) {
			best = i
		}
	}
	if best >= 0 {
		return p.Models[best], true
	}
	prov, ok := kve.LookupProvider(provider)
	if !ok || prov.Family == kve.FamilyGeneric {
		return Price{}, false
	}
	fam := prov.Family
	if fam == kve.FamilyAzure {
		fam = kve.FamilyOpenAI
	}
	return p.ceiling[fam], false
}

// Cost returns the cost of a usage record in micro-USD, rounded up.
func (p *Prices) Cost(u *kve.Usage) int64 {
	price, _ := p.Lookup(u.Provider, u.Model)
	cached := min(u.CachedTokens, u.PromptTokens)
	micro := float64(u.PromptTokens-cached)*price.Input + float64(cached)*price.Cached +
		float64(u.CompletionTokens)*price.Output // USD per 1M tokens = micro-USD per token
	return int64(math.Ceil(micro))
}
