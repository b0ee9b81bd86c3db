package planes

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/store"
)

// Consumer secrets (AppSecrets) are kept out of the gateway spec. The gateway verifies a
// request by computing HMAC-SHA256 with the secret itself, so a one-way hash (as for API
// tokens) cannot be stored: the server must be able to get the secret back. It is therefore
// sealed with AES-256-GCM under a key the server holds — SHUANGHUO_GATEWAY_KEY, or the file
// gateway-secrets.key in the data directory, created 0600 at first start — and written as a
// store doc of its own (kind "gateway-secret", id "<gateway>/<consumer>"), bound to that
// gateway and consumer (the GCM additional data), so a sealed value copied elsewhere does not
// open. Because secrets never enter the spec, no answer (GET of the gateway, its consumers,
// the audit log) and no audit record can hold them, sealed or not, and a PUT of a consumer
// keeps them untouched. A secret leaves the server once: in the answer that creates it.

// secretDocKind is the store doc kind of a gateway's sealed consumer secrets.
const secretDocKind = "gateway-secret"

// maxSecrets is how many secrets a consumer has active at once: the new one and the one
// before it, so that a client can move to the new secret without a refused request.
const maxSecrets = 2

// sealer seals and opens consumer secrets with the server's key.
type sealer struct{ aead cipher.AEAD }

// loadKey returns the secrets key: the value given (64 hex digits or standard base64 of 32
// bytes), else the one in file, which is created with a random key (mode 0600) when absent.
func loadKey(given, file string) ([]byte, error) {
	if given != "" {
		return parseKey(given)
	}
	if file == "" {
		return nil, errors.New("planes: gateway secrets: no key and no key file")
	}
	raw, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, fmt.Errorf("planes: gateway secrets: make key: %w", err)
		}
		f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("planes: gateway secrets: create key file: %w", err)
		}
		_, werr := f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n")
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return nil, fmt.Errorf("planes: gateway secrets: write key file: %w", werr)
		}
		return key, nil
	}
	if err != nil {
		return nil, fmt.Errorf("planes: gateway secrets: read key file: %w", err)
	}
	key, err := parseKey(strings.TrimSpace(string(raw)))
	if err != nil {
		return nil, fmt.Errorf("%w (file %s)", err, file)
	}
	return key, nil
}

func parseKey(s string) ([]byte, error) {
	if k, err := hex.DecodeString(s); err == nil && len(k) == 32 {
		return k, nil
	}
	if k, err := base64.StdEncoding.DecodeString(s); err == nil && len(k) == 32 {
		return k, nil
	}
	return nil, errors.New("planes: gateway secrets: the key must be 32 bytes, as 64 hex digits or base64")
}

func newSealer(key []byte) (*sealer, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("planes: gateway secrets: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("planes: gateway secrets: %w", err)
	}
	return &sealer{aead: aead}, nil
}

func secretAD(gatewayID, consumer string) []byte {
	return []byte("shuanghuo gateway secret\x00" + gatewayID + "\x00" + consumer)
}

// seal encrypts secret for one consumer of one gateway: "v1:" and base64 of nonce and
// ciphertext.
func (s *sealer) seal(gatewayID, consumer, secret string) (string, error) {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("planes: gateway secrets: %w", err)
	}
	out := s.aead.Seal(nonce, nonce, []byte(secret), secretAD(gatewayID, consumer))
	return "v1:" + base64.StdEncoding.EncodeToString(out), nil
}

func (s *sealer) open(gatewayID, consumer, sealed string) (string, error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(sealed, "v1:"))
	if !strings.HasPrefix(sealed, "v1:") || err != nil || len(raw) < s.aead.NonceSize() {
		return "", fmt.Errorf("planes: gateway %s consumer %s: malformed sealed secret", gatewayID, consumer)
	}
	n := s.aead.NonceSize()
	plain, err := s.aead.Open(nil, raw[:n], raw[n:], secretAD(gatewayID, consumer))
	if err != nil {
		return "", fmt.Errorf("planes: gateway %s consumer %s: the secret does not open with this server's key (was %s or the key file changed?)", gatewayID, consumer, GatewayKeyEnv)
	}
	return string(plain), nil
}

// GatewayKeyEnv names the environment variable that may hold the gateway secrets key.
const GatewayKeyEnv = "SHUANGHUO_GATEWAY_KEY"

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
			plain, err := p.seal.open(gatewayID, d.Consumer, s.Sealed)
			if err != nil {
				return nil, err
			}
			out[d.Consumer] = append(out[d.Consumer], plain)
		}
	}
	return out, nil
}
