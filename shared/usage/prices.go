package usage

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

//go:embed prices.json
var pricesJSON []byte

// Price is what a model costs, in USD per million tokens, and the most
// output tokens it writes in one response.
type Price struct {
	Provider  string  `json:"provider"`
	Model     string  `json:"model"`
	Input     float64 `json:"input"`
	Cached    float64 `json:"cached"`
	Output    float64 `json:"output"`
	MaxOutput int64   `json:"max_output"`
	Override  bool    `json:"override,omitzero"` // set by the organization, not the embedded list
}

// Prices is a dated price list. Models match by longest prefix, so
// "gpt-4o-mini-2024-07-18" is priced as "gpt-4o-mini".
type Prices struct {
	AsOf   string  `json:"as_of"`
	Models []Price `json:"models"`
	// ceiling per provider family: the most expensive entry, for unknown models
	ceiling map[kve.Family]Price
	// byProvider: the indexes of each provider's entries, longest model first
	byProvider map[string][]int
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
	if err := p.index(); err != nil {
		return nil, fmt.Errorf("parse prices: %w", err)
	}
	return &p, nil
}

// index checks the entries, finds each family's ceiling and indexes the
// entries by provider.
func (p *Prices) index() error {
	p.ceiling = map[kve.Family]Price{}
	p.byProvider = map[string][]int{}
	for i, m := range p.Models {
		p.byProvider[m.Provider] = append(p.byProvider[m.Provider], i)
		if err := CheckPrice(m.Provider, m.Model, m.Input, m.Cached, m.Output); err != nil {
			return err
		}
		prov, _ := kve.LookupProvider(m.Provider)
		c := p.ceiling[prov.Family]
		if m.Input+m.Output > c.Input+c.Output {
			c.Provider, c.Model, c.Input, c.Cached, c.Output = m.Provider, m.Model, m.Input, m.Cached, m.Output
		}
		c.MaxOutput = max(c.MaxOutput, m.MaxOutput)
		p.ceiling[prov.Family] = c
	}
	for _, idx := range p.byProvider {
		slices.SortStableFunc(idx, func(a, b int) int { return len(p.Models[b].Model) - len(p.Models[a].Model) })
	}
	return nil
}

// CheckPrice validates a price entry: a built-in model provider, a model
// name, and prices from 0 to 10,000 USD per million tokens.
func CheckPrice(provider, model string, input, cached, output float64) error {
	// Only the built-in model providers report usage to price.
	if prov, ok := kve.LookupProvider(provider); !ok || !kve.IsBuiltinProvider(provider) || prov.Family == kve.FamilyGeneric {
		return kve.Errorf(kve.KindInvalid, "invalid_price", "%q is not a provider kve prices (openai, anthropic, gemini, …)", kve.Truncate(provider, 40))
	}
	if model == "" || len(model) > 100 || strings.ContainsAny(model, "\x00\r\n") {
		return kve.Errorf(kve.KindInvalid, "invalid_price", "a price needs a model name of at most 100 characters")
	}
	for _, v := range []float64{input, cached, output} {
		if !(v >= 0 && v <= 10_000) {
			return kve.Errorf(kve.KindInvalid, "invalid_price", "price of %q: USD per million tokens must be 0 to 10000", kve.Truncate(model, 40))
		}
	}
	return nil
}

// With returns the list with an organization's overrides: an override
// replaces the entry of the same provider and model, or adds one, and
// keeps the maximum output of the entry its model falls under.
func (p *Prices) With(overrides []store.Price) *Prices {
	if len(overrides) == 0 {
		return p
	}
	out := &Prices{AsOf: p.AsOf, Models: make([]Price, 0, len(p.Models)+len(overrides))}
	for _, m := range p.Models {
		replaced := false
		for _, o := range overrides {
			replaced = replaced || o.Provider == m.Provider && o.Model == m.Model
		}
		if !replaced {
			out.Models = append(out.Models, m)
		}
	}
	for _, o := range overrides {
		base, _ := p.Lookup(o.Provider, o.Model)
		out.Models = append(out.Models, Price{Provider: o.Provider, Model: o.Model, Input: o.Input,
			Cached: o.Cached, Output: o.Output, MaxOutput: base.MaxOutput, Override: true})
	}
	if err := out.index(); err != nil {
		return p // overrides are checked when they are set; a bad one changes nothing
	}
	return out
}

// Lookup returns the price of model at provider, and whether it was listed.
// An unlisted model of a known family is priced as the family's most
// expensive entry, with the family's largest maximum output, so that naming
// an unknown model cannot dodge a budget.
func (p *Prices) Lookup(provider, model string) (Price, bool) {
	for _, i := range p.byProvider[provider] { // longest first: the first match is the longest
		if strings.HasPrefix(model, p.Models[i].Model) {
			return p.Models[i], true
		}
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

// defaultMaxOutput is what a request naming no max_tokens is reserved for
// when its model's maximum is not listed.
const defaultMaxOutput = 32_768

// Estimate returns the worst case of a request before it is forwarded: its
// input at about four bytes a token, all of it uncached, and its output up
// to maxOutput tokens (its max_tokens), or, when it names none, the
// model's maximum. In micro-USD, rounded up, and in tokens.
func (p *Prices) Estimate(u *kve.Usage, maxOutput int64) (micro, tokens int64) {
	price, _ := p.Lookup(u.Provider, u.Model)
	ceiling := price.MaxOutput
	if ceiling <= 0 {
		ceiling = defaultMaxOutput
	}
	out := ceiling
	if maxOutput > 0 {
		out = min(maxOutput, ceiling)
	}
	in := (max(u.BytesIn, 0) + 3) / 4
	if price.Output == 0 { // an embedding writes no tokens
		out = 0
	}
	return int64(math.Ceil(float64(in)*price.Input + float64(out)*price.Output)), in + out
}
