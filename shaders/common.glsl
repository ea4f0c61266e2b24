// Shared projection of one 3D Gaussian to screen space (EWA splatting with the 3DGS rules, spec 4.4).
// No #version line: the loader (gghead_core/render/_opengl.py) inserts this file after the #version and
// #define lines of splat.vert and project.comp, so both stages project with exactly the same code.
//
//   * cull when the camera-space depth is <= near (0.2), or when opacity < 1/255 (no pixel can pass);
//   * 3D covariance R diag(s^2) R^T from the quaternion (w, x, y, z) (normalised) and the scales;
//   * EWA Jacobian at the camera-space point whose x/z and y/z are clamped to the FoV widened by 30 %
//     (clamp = (x/z min, x/z max, y/z min, y/z max); +-1.3 tan(fov/2) for a centred principal point);
//   * + eps2d (0.3 px^2) on the diagonal of the 2D covariance (low-pass);
//   * 3DGS's screen radius ceil(3 sqrt(lambda_max)), lambda_max = mid + sqrt(max(0.1, mid^2 - det)).
// Conventions: OpenCV camera (x right, y down, z forward), pixel intrinsics (fx, fy, cx, cy) with pixel
// centres at integer + 0.5, so a pixel's centre is exactly gl_FragCoord.xy.
//
// Footprint: the fragment stage keeps a pixel iff opacity * exp(-q/2) >= 1/255 with q = d^T S^-1 d, i.e.
// q <= 2 ln(255 opacity): an ellipse. The quad is the rectangle around that ellipse along its principal
// axes (semi-axes sqrt(q_max lambda_i)), and the point sprite is its axis-aligned bounding square. Every
// pixel centre the fragment stage accepts lies inside (or on) them; FOOTPRINT_MARGIN px more absorbs
// float rounding. (A larger margin only costs fragments: +0.5 px made 1.5-sigma sprites 28 % bigger.)

#define FOOTPRINT_MARGIN 0.05

struct ProjectedSplat {
    bool visible;
    vec2 mean;        // pixels
    vec3 conic;       // inverse 2D covariance (a, b, c) of [[a, b], [b, c]]
    float depth;      // camera-space z
    vec2 axis_major;  // half-extent vectors of the oriented footprint rectangle, pixels
    vec2 axis_minor;
    vec2 aabb_half;   // half-extents of the axis-aligned footprint box, pixels
    float radius;     // 3DGS 3-sigma radius, pixels (informational)
};

mat3 rotation_from_quat(vec4 q) {
    q = q / max(length(q), 1e-12);
    float w = q.x, x = q.y, y = q.z, z = q.w;
    // GLSL matrices are column-major: these are the columns of R.
    return mat3(
        1.0 - 2.0 * (y * y + z * z), 2.0 * (x * y + w * z), 2.0 * (x * z - w * y),
        2.0 * (x * y - w * z), 1.0 - 2.0 * (x * x + z * z), 2.0 * (y * z + w * x),
        2.0 * (x * z + w * y), 2.0 * (y * z - w * x), 1.0 - 2.0 * (x * x + y * y));
}

ProjectedSplat project_gaussian(vec3 mean_world, vec4 quat, vec3 scale, float opacity, mat4 viewmat,
                                vec4 intrinsics, vec4 fov_clamp, float near, float eps2d) {
    ProjectedSplat s;
    s.visible = false;
    s.mean = vec2(0.0); s.conic = vec3(0.0); s.depth = 0.0;
    s.axis_major = vec2(0.0); s.axis_minor = vec2(0.0); s.aabb_half = vec2(0.0); s.radius = 0.0;

    vec3 p = (viewmat * vec4(mean_world, 1.0)).xyz;
    s.depth = p.z;
    if (!(p.z > near) || !(opacity * 255.0 >= 1.0)) return s;

    mat3 R = rotation_from_quat(quat);
    mat3 M = R * mat3(scale.x, 0.0, 0.0, 0.0, scale.y, 0.0, 0.0, 0.0, scale.z);
    mat3 W = mat3(viewmat);
    mat3 T = W * M;                                        // camera-space R diag(s)
    mat3 cov_cam = T * transpose(T);

    float fx = intrinsics.x, fy = intrinsics.y;
    float inv_z = 1.0 / p.z;
    float tx = p.z * clamp(p.x * inv_z, fov_clamp.x, fov_clamp.y);
    float ty = p.z * clamp(p.y * inv_z, fov_clamp.z, fov_clamp.w);
    // Rows of J = [[fx/z, 0, -fx tx/z^2], [0, fy/z, -fy ty/z^2]].
    vec3 j0 = vec3(fx * inv_z, 0.0, -fx * tx * inv_z * inv_z);
    vec3 j1 = vec3(0.0, fy * inv_z, -fy * ty * inv_z * inv_z);
    vec3 cj0 = cov_cam * j0;
    vec3 cj1 = cov_cam * j1;
    float a = dot(j0, cj0) + eps2d;
    float b = dot(j0, cj1);
    float c = dot(j1, cj1) + eps2d;

    float det = a * c - b * b;
    if (!(det > 0.0)) return s;
    float mid = 0.5 * (a + c);
    s.radius = ceil(3.0 * sqrt(mid + sqrt(max(0.1, mid * mid - det))));

    float disc = sqrt(max(0.0, mid * mid - det));
    float lambda1 = mid + disc;
    float lambda2 = max(mid - disc, 0.0);
    vec2 e1 = abs(b) > 1e-12 * max(a, c) ? normalize(vec2(b, lambda1 - a)) : (a >= c ? vec2(1.0, 0.0) : vec2(0.0, 1.0));
    float q_max = 2.0 * log(255.0 * opacity);              // >= 0 here since opacity >= 1/255
    s.axis_major = e1 * (sqrt(q_max * lambda1) + FOOTPRINT_MARGIN);
    s.axis_minor = vec2(-e1.y, e1.x) * (sqrt(q_max * lambda2) + FOOTPRINT_MARGIN);
    s.aabb_half = sqrt(q_max * vec2(a, c)) + FOOTPRINT_MARGIN;

    s.mean = vec2(fx * p.x * inv_z + intrinsics.z, fy * p.y * inv_z + intrinsics.w);
    s.conic = vec3(c, -b, a) / det;
    s.visible = true;
    return s;
}
