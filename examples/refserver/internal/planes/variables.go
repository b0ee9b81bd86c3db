package planes

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"strconv"
	"sync"

	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/api"
)

// centerVar is a reference to a per-center variable in an app's spec, such as
// "${center.redis}": each center resolves it with its own value when it pushes the app, so a
// spec copied from the other center (appsync's config sync) carries no address of the
// center it came from.
var centerVar = regexp.MustCompile(`\$\{center\.([A-Za-z0-9_.-]*)\}`)

// VariablesInput is the deploy/variables setting: this center's values of the variables app
// specs refer to as ${center.NAME}.
type VariablesInput struct {
	Variables map[string]string `json:"variables" validate:"max=256,dive,keys,required,max=64,endkeys,max=4096"`
}

// centerVars holds this center's variables.
type centerVars struct {
	mu   sync.RWMutex
	vars map[string]string
}

func (v *centerVars) set(in map[string]string) error {
	inv := api.InvalidSpec{}
	for name := range in {
		if !centerVar.MatchString("${center." + name + "}") {
			inv["variables."+name] = "a variable name has letters, digits, '.', '-' and '_' only"
		}
	}
	if len(inv) > 0 {
		return inv
	}
	v.mu.Lock()
	v.vars = maps.Clone(in)
	v.mu.Unlock()
	return nil
}

func (v *centerVars) current() map[string]string {
	v.mu.RLock()
	defer v.mu.RUnlock()
	out := maps.Clone(v.vars)
	if out == nil {
		out = map[string]string{}
	}
	return out
}

// expand replaces every ${center.NAME} in the strings of spec (a JSON document) with this
// center's value. A reference to a variable the center does not have is an InvalidSpec
// naming the field, and nothing is replaced.
func (v *centerVars) expand(spec json.RawMessage) (json.RawMessage, error) {
	if !bytes.Contains(spec, []byte("${center.")) {
		return spec, nil
	}
	dec := json.NewDecoder(bytes.NewReader(spec))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("planes: read spec: %w", err)
	}
	vars := v.current()
	inv := api.InvalidSpec{}
	doc = expandValue(doc, "", vars, inv)
	if len(inv) > 0 {
		return nil, inv
	}
	out, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("planes: write spec: %w", err)
	}
	return out, nil
}

func expandValue(x any, path string, vars map[string]string, inv api.InvalidSpec) any {
	switch x := x.(type) {
	case string:
		return centerVar.ReplaceAllStringFunc(x, func(ref string) string {
			name := centerVar.FindStringSubmatch(ref)[1]
			val, ok := vars[name]
			if !ok {
				inv[path] = fmt.Sprintf("refers to ${center.%s}, which this center does not define (PUT /api/v1/deploy/variables)", name)
			}
			return val
		})
	case map[string]any:
		for k, e := range x {
			x[k] = expandValue(e, joinField(path, k), vars, inv)
		}
	case []any:
		for i, e := range x {
			x[i] = expandValue(e, path+"["+strconv.Itoa(i)+"]", vars, inv)
		}
	}
	return x
}

func joinField(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// Variables is the deploy/variables setting: everyone reads this center's variables; the
// admin sets them. Apps pushed afterwards, and at the next restart, use the new values;
// running instances keep theirs until they start again.
func (p *Deploy) Variables() api.Setting {
	return api.Setting{
		Path:  "deploy/variables",
		Input: func() any { return &VariablesInput{} },
		Apply: func(_ context.Context, in any) error {
			return p.vars.set(in.(*VariablesInput).Variables)
		},
		Current: func() any { return VariablesInput{Variables: p.vars.current()} },
	}
}
