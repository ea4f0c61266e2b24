#version 430 core
// GPU depth sort for the splatting pass: bitonic sort of (key, index) pairs in two SSBOs.
//
// Keys are the camera-space depths mapped to order-preserving uint32 (sign flip trick), indices break ties,
// so the result is a total order identical to a stable CPU argsort of the same keys. The arrays are padded
// to a power of two n >= 2 * LOCAL_SIZE with (0xFFFFFFFF, 0xFFFFFFFF), which sorts after every real entry.
//
// One program, four stages selected by u_stage (the host loops over them):
//   0 KEYS         thread i: keys[i] = sortable(depth of Gaussian i), vals[i] = i; padding past u_count
//   1 LOCAL_SORT   workgroup b sorts its block of BLOCK = 2 * LOCAL_SIZE entries in shared memory, covering
//                  every bitonic stage k <= BLOCK (directions from the global index, as in the full network)
//   2 GLOBAL_STEP  one compare-exchange per thread for the step (u_k, u_j) with u_j >= BLOCK
//   3 LOCAL_MERGE  for stage u_k > BLOCK, all steps j < BLOCK of one block in shared memory
// Dispatches for n = 2^m: 2 + sum over k > BLOCK of (log2(k) - log2(BLOCK) + 1), e.g. 46 for 2^18.
// The depth uses the same float32 expression as the CPU sort (dot of the view matrix's third row), but a
// GPU may fuse it differently, so near-equal depths can order differently from the CPU path; the order of
// equal keys (ties by index) is identical.

#define LOCAL_SIZE 512
#define BLOCK (2 * LOCAL_SIZE)

layout(local_size_x = LOCAL_SIZE) in;

layout(std430, binding = 0) buffer SortKeys { uint keys[]; };
layout(std430, binding = 1) buffer SortVals { uint vals[]; };

uniform samplerBuffer u_geom;    // 3 texels per Gaussian, texel 0 = (mean.xyz, opacity)
uniform int u_stage;
uniform uint u_count;            // real entries
uniform uint u_k;
uniform uint u_j;
uniform vec4 u_depth_row;        // third row of the world -> camera matrix: depth = dot(row.xyz, mean) + row.w

shared uint s_keys[BLOCK];
shared uint s_vals[BLOCK];

uint sortable_key(float depth) {
    uint bits = floatBitsToUint(depth);
    return (bits & 0x80000000u) != 0u ? ~bits : (bits | 0x80000000u);
}

bool greater_than(uint ka, uint va, uint kb, uint vb) {
    return ka > kb || (ka == kb && va > vb);
}

// Index of the first element of compare-exchange pair t for step j.
uint pair_first(uint t, uint j) {
    return ((t & ~(j - 1u)) << 1) | (t & (j - 1u));
}

void local_steps(uint block_base, uint k, uint j_start) {
    uint lt = gl_LocalInvocationID.x;
    for (uint j = j_start; j > 0u; j >>= 1) {
        uint i = pair_first(lt, j);
        uint l = i + j;
        bool ascending = ((block_base + i) & k) == 0u;
        uint ki = s_keys[i], vi = s_vals[i], kl = s_keys[l], vl = s_vals[l];
        if (greater_than(ki, vi, kl, vl) == ascending) {
            s_keys[i] = kl; s_vals[i] = vl;
            s_keys[l] = ki; s_vals[l] = vi;
        }
        barrier();
    }
}

void load_block(uint base) {
    uint lt = gl_LocalInvocationID.x;
    s_keys[lt] = keys[base + lt];
    s_vals[lt] = vals[base + lt];
    s_keys[lt + LOCAL_SIZE] = keys[base + lt + LOCAL_SIZE];
    s_vals[lt + LOCAL_SIZE] = vals[base + lt + LOCAL_SIZE];
    barrier();
}

void store_block(uint base) {
    uint lt = gl_LocalInvocationID.x;
    keys[base + lt] = s_keys[lt];
    vals[base + lt] = s_vals[lt];
    keys[base + lt + LOCAL_SIZE] = s_keys[lt + LOCAL_SIZE];
    vals[base + lt + LOCAL_SIZE] = s_vals[lt + LOCAL_SIZE];
}

void main() {
    uint gid = gl_GlobalInvocationID.x;
    if (u_stage == 0) {
        if (gid < u_count) {
            vec3 mean = texelFetch(u_geom, int(3u * gid)).xyz;
            keys[gid] = sortable_key(dot(u_depth_row.xyz, mean) + u_depth_row.w);
            vals[gid] = gid;
        } else {
            keys[gid] = 0xFFFFFFFFu;
            vals[gid] = 0xFFFFFFFFu;
        }
    } else if (u_stage == 1) {
        uint base = gl_WorkGroupID.x * uint(BLOCK);
        load_block(base);
        for (uint k = 2u; k <= uint(BLOCK); k <<= 1) {
            local_steps(base, k, k >> 1);
        }
        store_block(base);
    } else if (u_stage == 2) {
        uint i = pair_first(gid, u_j);
        uint l = i + u_j;
        bool ascending = (i & u_k) == 0u;
        uint ki = keys[i], vi = vals[i], kl = keys[l], vl = vals[l];
        if (greater_than(ki, vi, kl, vl) == ascending) {
            keys[i] = kl; vals[i] = vl;
            keys[l] = ki; vals[l] = vi;
        }
    } else {
        uint base = gl_WorkGroupID.x * uint(BLOCK);
        load_block(base);
        local_steps(base, u_k, uint(BLOCK) >> 1);
        store_block(base);
    }
}
