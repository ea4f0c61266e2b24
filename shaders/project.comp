#version 430 core
// Per-frame preprocessing (GL >= 4.3), after the depth sort: project every Gaussian once (common.glsl) and
// write its screen-space splat *in drawing order* (back to front), so splat.vert reads plain vertex
// attributes with no per-vertex indirection and no per-vertex projection (llvmpipe runs vertex shaders on
// one thread; compute shaders use all cores).
//
// Invocation k (< u_count) handles Gaussian order[u_count - 1 - k] (order = ascending depth) and writes
//   splats[4 k + 0..3] = (mean.xy, depth, opacity; opacity 0 when culled), (conic a, b, c, point size),
//                        (colour rgb, 0), (axis_major.xy, axis_minor.xy)
// and footprint statistics for the host's choice of primitive, per draw chunk of u_chunk splats (the host
// may draw each chunk with another primitive). They are kept cheap (no barrier, no shared memory, which are
// slow on llvmpipe): the largest sprite size is exact whenever it exceeds 32 px (only those invocations
// touch the atomic), and the pixel sums come from every 8th Gaussian.

layout(local_size_x = 256) in;

uniform samplerBuffer u_geom;    // 3 texels per Gaussian: (mean.xyz, opacity), (quat w,x,y,z), (scale.xyz, 0)
uniform samplerBuffer u_color;   // 1 texel per Gaussian: (r, g, b, 0)
uniform uint u_count;
uniform uint u_chunk;            // splats per draw chunk (statistics are per chunk)
uniform bool u_stats;            // gather statistics (off on hardware GL, which always draws quads)
uniform mat4 u_viewmat;
uniform vec4 u_intrinsics;
uniform vec4 u_clamp;
uniform float u_near;
uniform float u_eps2d;

layout(std430, binding = 1) readonly buffer SortVals { uint order[]; };
layout(std430, binding = 2) writeonly buffer Splats { vec4 splats[]; };
// 4 per chunk: max point size (exact when > 32, else 0), sampled quad pixels / 16, sampled point-sprite
// pixels / 16, visible Gaussians among the sampled ones.
layout(std430, binding = 3) buffer Stats { uint stats[]; };

void main() {
    uint k = gl_GlobalInvocationID.x;
    if (k >= u_count) return;
    uint i = order[u_count - 1u - k];
    vec4 t0 = texelFetch(u_geom, int(3u * i));
    ProjectedSplat s = project_gaussian(t0.xyz, texelFetch(u_geom, int(3u * i + 1u)),
                                        texelFetch(u_geom, int(3u * i + 2u)).xyz, t0.w, u_viewmat,
                                        u_intrinsics, u_clamp, u_near, u_eps2d);
    float point_size = 2.0 * max(s.aabb_half.x, s.aabb_half.y);
    splats[4u * k + 0u] = vec4(s.mean, s.depth, s.visible ? t0.w : 0.0);
    splats[4u * k + 1u] = vec4(s.conic, point_size);
    splats[4u * k + 2u] = vec4(texelFetch(u_color, int(i)).rgb, 0.0);
    splats[4u * k + 3u] = vec4(s.axis_major, s.axis_minor);
    if (u_stats && s.visible) {
        uint base = 4u * (k / u_chunk);
        if (point_size > 32.0) atomicMax(stats[base], uint(ceil(min(point_size, 1e6))));
        if ((i & 7u) == 0u) {
            // Units of 16 px, each Gaussian capped at 2^20 units: overflow needs absurd scenes, and then the
            // host merely picks the slower primitive.
            float quad_px = 4.0 * length(s.axis_major) * length(s.axis_minor);
            atomicAdd(stats[base + 1u], uint(min(quad_px / 16.0 + 0.5, 1048576.0)));
            atomicAdd(stats[base + 2u], uint(min(point_size * point_size / 16.0 + 0.5, 1048576.0)));
            atomicAdd(stats[base + 3u], 1u);
        }
    }
}
