package planes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/store"
)

// Consumer secrets (AppSecrets) are kept out of the gateway spec. The gateway verifies a
// request by computing HMAC-SHA256 with the secret itself, so a one-way hash (as for API
// tokens) cannot be stored: the server must be able to get the secret back. It is therefore
// sealed with the server's secrets key (store.Sealer) and written as a store doc of its own
// (kind "gateway-secret", id "<gateway>/<consumer>"), bound to that gateway and consumer,
// so a sealed value copied elsewhere does not open. Because secrets never enter the spec, no
// answer (GET of the gateway, its consumers, the audit log) and no audit record can hold
// them, sealed or not, and a PUT of a consumer keeps them untouched. A secret leaves the
// server once: in the answer that creates it.

// secretDocKind is the store doc kind of a gateway's sealed consumer secrets.
const secretDocKind = "gateway-secret"

// maxSecrets is how many secrets a consumer has active at once: the new one and the one
// before it, so that a client can move to the new secret without a refused request.
const maxSecrets = 2

// secretBinding starts what a consumer secret is bound to, as the gateway sealed them before
// the store sealed anything else, so that they still open.
const secretBinding = "shuanghuo gateway secret"

func (p *Gateways) sealSecret(gatewayID, consumer, secret string) (string, error) {
	return p.seal.Seal(secret, secretBinding, gatewayID, consumer)
}

func (p *Gateways) openSecret(gatewayID, consumer, sealed string) (string, error) {
	plain, err := p.seal.Open(sealed, secretBinding, gatewayID, consumer)
	if err != nil {
		return "", fmt.Errorf("planes: gateway %s consumer %s: %w", gatewayID, consumer, err)
	}
	return plain, nil
}

// secretDoc is the stored doc of one consumer's secrets, oldest first.
type secretDoc struct {
	Gateway  string         `json:"gateway"`
	Consumer string         `json:"consumer"`
	Secrets  []sealedSecret `json:"secrets"`
}

type sealedSecret struct {
	Sealed    string    `json:"sealed"`
	CreatedAt time.Time `json:"created_at"`
}

func secretDocID(gatewayID, consumer string) string { return gatewayID + "/" + consumer }

// secretDoc reads a consumer's secrets doc; a consumer without one gets an empty doc.
func (p *Gateways) secretDoc(ctx context.Context, gatewayID, consumer string) (secretDoc, error) {
	d := secretDoc{Gateway: gatewayID, Consumer: consumer}
	raw, err := p.st.Doc(ctx, secretDocKind, secretDocID(gatewayID, consumer))
	if errors.Is(err, store.ErrNotFound) {
		return d, nil
	}
	if err != nil {
		return d, err
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		return d, fmt.Errorf("planes: gateway %s consumer %s: stored secrets: %w", gatewayID, consumer, err)
	}
	return d, nil
}

func (p *Gateways) putSecretDoc(ctx context.Context, d secretDoc) error {
	raw, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("planes: encode secrets: %w", err)
	}
	return p.st.PutDoc(ctx, secretDocKind, secretDocID(d.Gateway, d.Consumer), raw)
}

// secrets opens every stored secret of a gateway's consumers, by consumer ID, oldest first.
func (p *Gateways) secrets(ctx context.Context, gatewayID string) (map[string][]string, error) {
	raws, err := p.st.Docs(ctx, secretDocKind, gatewayID+"/")
	if err != nil {
		return nil, err
	}
	out := make(map[string][]string, len(raws))
	for _, raw := range raws {
		var d secretDoc
		if err := json.Unmarshal(raw, &d); err != nil {
			return nil, fmt.Errorf("planes: gateway %s: stored secrets: %w", gatewayID, err)
		}
		if d.Gateway != gatewayID {
			continue // a gateway whose ID starts like this one's
		}
		for _, s := range d.Secrets {
			plain, err := p.openSecret(gatewayID, d.Consumer, s.Sealed)
			if err != nil {
				return nil, err
			}
			out[d.Consumer] = append(out[d.Consumer], plain)
		}
	}
	return out, nil
}
