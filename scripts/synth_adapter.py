#!/usr/bin/env python3
"""Writes a random PEFT LoRA adapter (r, alpha) for every linear projection of a model directory's
safetensors files (attention q/k/v/o and MLP gate/up/down, per-expert ones included)."""
import json, os, random, re, struct, sys

def headers(model_dir):
    for name in sorted(os.listdir(model_dir)):
        if not name.endswith('.safetensors'):
            continue
        with open(os.path.join(model_dir, name), 'rb') as f:
            n = struct.unpack('<Q', f.read(8))[0]
            yield json.loads(f.read(n))

def main(model_dir, out_dir, r=8, alpha=16, seed=0):
    rng = random.Random(seed)
    pat = re.compile(r'(.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj))\.weight$')
    modules = []
    for h in headers(model_dir):
        for k, v in h.items():
            m = pat.match(k)
            if m and len(v['shape']) == 2:
                modules.append((m.group(1), v['shape']))
    modules.sort()
    os.makedirs(out_dir, exist_ok=True)
    header, blobs, offset = {}, [], 0
    for mod, (out_f, in_f) in modules:
        for suffix, shape, std in (('lora_A', (r, in_f), 1.0 / in_f ** 0.5), ('lora_B', (out_f, r), 0.002)):
            n = shape[0] * shape[1]
            data = struct.pack('<%df' % n, *(rng.gauss(0, std) for _ in range(n)))
            header['base_model.model.%s.%s.weight' % (mod, suffix)] = {
                'dtype': 'F32', 'shape': list(shape), 'data_offsets': [offset, offset + len(data)]}
            blobs.append(data)
            offset += len(data)
    hj = json.dumps(header).encode()
    hj += b' ' * (-len(hj) % 8)
    with open(os.path.join(out_dir, 'adapter_model.safetensors'), 'wb') as f:
        f.write(struct.pack('<Q', len(hj)))
        f.write(hj)
        for b in blobs:
            f.write(b)
    targets = sorted({m.rsplit('.', 1)[1] for m, _ in modules})
    with open(os.path.join(out_dir, 'adapter_config.json'), 'w') as f:
        json.dump({'peft_type': 'LORA', 'r': r, 'lora_alpha': alpha, 'target_modules': targets,
                   'use_rslora': False, 'fan_in_fan_out': False}, f, indent=2)
    print('%d modules, %.1f MB' % (len(modules), offset / 1e6))

if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2])
