package usage

import (
	"testing"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

func TestDefaultPrices(t *testing.T) {
	p := DefaultPrices()
	if p.AsOf == "" || len(p.Models) < 20 {
		t.Fatalf("embedded list: as of %q, %d models", p.AsOf, len(p.Models))
	}
	for _, m := range p.Models {
		if m.Output > 0 && m.MaxOutput <= 0 {
			t.Errorf("%s %s writes output but names no max_output", m.Provider, m.Model)
		}
	}
}

func TestLookupAndCost(t *testing.T) {
	p := DefaultPrices()
	for _, tc := range []struct {
		name     string
		u        kve.Usage
		want     int64
		listed   bool
		wantFrom string // the entry it is priced as
	}{
		{"dated snapshot by prefix", kve.Usage{Provider: "openai", Model: "gpt-4o-mini-2024-07-18", PromptTokens: 1000, CompletionTokens: 1000},
			750, true, "gpt-4o-mini"},
		{"cached tokens at the cached price", kve.Usage{Provider: "openai", Model: "gpt-4o", PromptTokens: 1000, CachedTokens: 400, CompletionTokens: 10},
			600*2.5 + 400*1.25 + 10*10, true, "gpt-4o"},
		{"azure as openai", kve.Usage{Provider: "azure-openai", Model: "gpt-4o", PromptTokens: 1000},
			15000, false, "o1"}, // no azure entries: the openai family's ceiling
		{"unknown model at the family's ceiling", kve.Usage{Provider: "anthropic", Model: "claude-next", PromptTokens: 1, CompletionTokens: 1},
			90, false, "claude-opus-4"},
		{"generic provider is free", kve.Usage{Provider: "stripe", PromptTokens: 100}, 0, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			price, listed := p.Lookup(tc.u.Provider, tc.u.Model)
			if listed != tc.listed || price.Model != tc.wantFrom {
				t.Errorf("Lookup = %s (listed %v), want %s (%v)", price.Model, listed, tc.wantFrom, tc.listed)
			}
			if got := p.Cost(&tc.u); got != tc.want {
				t.Errorf("Cost = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestEstimate(t *testing.T) {
	p := DefaultPrices()
	for _, tc := range []struct {
		name       string
		u          kve.Usage
		maxOutput  int64
		wantMicro  int64
		wantTokens int64
	}{
		// 400 bytes ≈ 100 tokens in at $0.15/M, 1,000 out at $0.60/M.
		{"max_tokens", kve.Usage{Provider: "openai", Model: "gpt-4o-mini", BytesIn: 400}, 1000, 15 + 600, 1100},
		// No max_tokens: the model's maximum output, 16,384 tokens.
		{"model ceiling", kve.Usage{Provider: "openai", Model: "gpt-4o-mini", BytesIn: 400}, 0, 15 + 9831, 16484},
		{"max_tokens above the model's", kve.Usage{Provider: "openai", Model: "gpt-4o-mini"}, 1 << 40, 9831, 16384},
		{"embeddings write nothing", kve.Usage{Provider: "openai", Model: "text-embedding-3-small", BytesIn: 4000}, 0, 20, 1000},
		{"unknown model: the family's most expensive", kve.Usage{Provider: "openai", Model: "gpt-9"}, 100, 6000, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			micro, tokens := p.Estimate(&tc.u, tc.maxOutput)
			if micro != tc.wantMicro || tokens != tc.wantTokens {
				t.Errorf("Estimate = %d µ$, %d tokens; want %d, %d", micro, tokens, tc.wantMicro, tc.wantTokens)
			}
		})
	}
}

func TestOverrides(t *testing.T) {
	base := DefaultPrices()
	p := base.With([]store.Price{
		{Provider: "openai", Model: "gpt-4o-mini", Input: 0.10, Cached: 0.05, Output: 0.40}, // negotiated
		{Provider: "openai", Model: "ft:gpt-4o-mini:acme", Input: 0.30, Cached: 0.15, Output: 1.20},
	})
	u := kve.Usage{Provider: "openai", Model: "gpt-4o-mini-2024-07-18", PromptTokens: 1000, CompletionTokens: 1000}
	if got := p.Cost(&u); got != 500 {
		t.Errorf("overridden price: cost %d, want 500", got)
	}
	if got := base.Cost(&u); got != 750 {
		t.Errorf("the embedded list changed: cost %d, want 750", got)
	}
	ft := kve.Usage{Provider: "openai", Model: "ft:gpt-4o-mini:acme:abc123", CompletionTokens: 1000}
	if got := p.Cost(&ft); got != 1200 {
		t.Errorf("added model: cost %d, want 1200", got)
	}
	if price, _ := p.Lookup("openai", "gpt-4o-mini"); !price.Override || price.MaxOutput != 16384 {
		t.Errorf("override = %+v, want flagged and keeping the model's max output", price)
	}
	if len(p.Models) != len(base.Models)+1 {
		t.Errorf("%d models, want the embedded %d plus the one added", len(p.Models), len(base.Models))
	}
}

func TestCheckPrice(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		provider, model       string
		input, cached, output float64
		ok                    bool
	}{
		{"fine", "openai", "gpt-4o", 1, 0.5, 4, true},
		{"unknown provider", "nope", "gpt-4o", 1, 1, 1, false},
		{"no model", "openai", "", 1, 1, 1, false},
		{"negative", "openai", "gpt-4o", -1, 1, 1, false},
		{"absurd", "openai", "gpt-4o", 1, 1, 1e9, false},
		{"newline in the model", "openai", "gpt\n4o", 1, 1, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckPrice(tc.provider, tc.model, tc.input, tc.cached, tc.output)
			if (err == nil) != tc.ok || err != nil && kve.KindOf(err) != kve.KindInvalid {
				t.Errorf("CheckPrice = %v, want ok %v", err, tc.ok)
			}
		})
	}
}
