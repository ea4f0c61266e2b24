#version 330 core
// 3D Gaussian splatting, vertex stage. The loader inserts `#define` lines and common.glsl after #version.
//
// Two ways to get a Gaussian's screen-space footprint:
//   PROJECTED defined (GL >= 4.3): project.comp already projected every Gaussian once per frame, in
//     drawing order, into the splat buffer, which arrives here as 4 vertex attributes (divisor 1 for
//     instanced quads and triangles, 0 for points); this stage only places vertices. Projecting here would redo the EWA
//     math for each of the 4 quad corners, and llvmpipe runs vertex shaders on one thread.
//   otherwise (GL 3.3 fallback, CPU sort): project_gaussian() from common.glsl runs here, per vertex, on
//     Gaussians fetched from buffer textures through the sorted order.
// Three primitive types (the host picks one per frame, see _opengl.py's cost model):
//   POINTS defined: one point sprite per Gaussian (gl_PointSize = footprint box side). Cheapest per
//     Gaussian on llvmpipe; only used when every sprite fits GL_POINT_SIZE_RANGE. Needs a guard band
//     around the viewport because GL drops a point whose centre is outside the clip volume.
//   TRIANGLES defined: one instanced triangle per Gaussian, equilateral around the alpha >= 1/255 ellipse
//     (3 vertices, 1.3x the quad's area): on llvmpipe cheaper than quads, and than sprites for long splats.
//   otherwise: a 4-vertex triangle strip per instance, the rectangle around the alpha >= 1/255 ellipse
//     (fewest fragments; what hardware GPUs get).
//
// Primitives are emitted back to front. Image row 0 is framebuffer row 0 (no y flip), so glReadPixels
// returns rows in image order.

uniform vec4 u_pixel_to_ndc;     // ndc = pixel * xy + zw (includes the guard band)

#if defined(POINTS) && !defined(PROJECTED)
#error "POINTS needs PROJECTED (the sprite size comes from project.comp)"
#endif

#ifdef PROJECTED
layout(location = 0) in vec4 a_splat0;   // mean.xy, depth, opacity (0 = culled)
layout(location = 1) in vec4 a_splat1;   // conic a, b, c, point size
layout(location = 2) in vec4 a_splat2;   // colour rgb, -
layout(location = 3) in vec4 a_splat3;   // axis_major.xy, axis_minor.xy
#else
uniform usamplerBuffer u_order;  // [>= u_count] Gaussian indices, ascending depth
uniform int u_count;             // number of Gaussians drawn
uniform samplerBuffer u_geom;    // 3 texels per Gaussian: (mean.xyz, opacity), (quat w,x,y,z), (scale.xyz, 0)
uniform samplerBuffer u_color;   // 1 texel per Gaussian: (r, g, b, 0)
uniform mat4 u_viewmat;          // world -> camera (OpenCV)
uniform vec4 u_intrinsics;       // fx, fy, cx, cy in pixels
uniform vec4 u_clamp;            // x/z min, x/z max, y/z min, y/z max
uniform float u_near;
uniform float u_eps2d;
#endif

flat out vec3 v_color;
flat out float v_opacity;
flat out vec3 v_conic;
flat out vec2 v_mean;
flat out float v_depth;

void cull() {
    // Outside the clip volume (also for points, whose centre decides): no fragments.
    gl_Position = vec4(2.0, 2.0, 2.0, 1.0);
#ifdef POINTS
    gl_PointSize = 1.0;
#endif
    v_color = vec3(0.0); v_opacity = 0.0; v_conic = vec3(0.0); v_mean = vec2(0.0); v_depth = 0.0;
}

void main() {
#ifdef PROJECTED
    if (!(a_splat0.w > 0.0)) { cull(); return; }
    vec2 mean = a_splat0.xy;
    v_depth = a_splat0.z;
    v_opacity = a_splat0.w;
    v_conic = a_splat1.xyz;
    v_color = a_splat2.rgb;
#ifdef POINTS
    float point_size = a_splat1.w;
#else
    vec2 axis_major = a_splat3.xy;
    vec2 axis_minor = a_splat3.zw;
#endif
#else
    int idx = int(texelFetch(u_order, u_count - 1 - gl_InstanceID).r);   // back to front
    vec4 t0 = texelFetch(u_geom, 3 * idx + 0);
    ProjectedSplat s = project_gaussian(t0.xyz, texelFetch(u_geom, 3 * idx + 1), texelFetch(u_geom, 3 * idx + 2).xyz,
                                        t0.w, u_viewmat, u_intrinsics, u_clamp, u_near, u_eps2d);
    if (!s.visible) { cull(); return; }
    vec2 mean = s.mean;
    v_depth = s.depth;
    v_opacity = t0.w;
    v_conic = s.conic;
    v_color = texelFetch(u_color, idx).rgb;
    vec2 axis_major = s.axis_major;
    vec2 axis_minor = s.axis_minor;
#endif

    v_mean = mean;
#ifdef POINTS
    gl_PointSize = point_size;
    gl_Position = vec4(mean * u_pixel_to_ndc.xy + u_pixel_to_ndc.zw, 0.0, 1.0);
#else
#ifdef TRIANGLES
    // Equilateral triangle around the unit circle (inradius 1, circumradius 2) in the ellipse's frame.
    const vec2 tri[3] = vec2[3](vec2(0.0, 2.0), vec2(-1.7320508, -1.0), vec2(1.7320508, -1.0));
    vec2 corner = tri[gl_VertexID];
#else
    vec2 corner = vec2(float(gl_VertexID & 1), float(gl_VertexID >> 1)) * 2.0 - 1.0;
#endif
    vec2 pixel = mean + corner.x * axis_major + corner.y * axis_minor;
    gl_Position = vec4(pixel * u_pixel_to_ndc.xy + u_pixel_to_ndc.zw, 0.0, 1.0);
#endif
}
