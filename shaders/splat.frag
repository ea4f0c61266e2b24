#version 330 core
// 3D Gaussian splatting, fragment stage: Gaussian falloff and premultiplied output for back-to-front blending.
//
// Per pixel (spec 4.4): alpha = min(0.99, opacity * exp(-1/2 d^T S^-1 d)); skipped when the exponent is
// positive or alpha < 1/255. Quads arrive sorted back to front and the fixed-function blend is
//     glBlendFuncSeparate(ONE, ONE_MINUS_SRC_ALPHA, ZERO, ONE_MINUS_SRC_ALPHA)
// so with attachment 0 cleared to (background, 1) and attachment 1 to 0:
//     attachment 0 rgb = sum_i c_i w_i + T * background,  a = T = prod_i (1 - alpha_i)
//     attachment 1 r   = sum_i z_i w_i (depth_accum),      g = sum_i w_i = 1 - T
// with w_i = alpha_i prod_{j in front of i} (1 - alpha_j): the same sums as front-to-back compositing.
// The reference's early stop (a pixel stops before the Gaussian that would bring T below 1e-4) has no
// blending equivalent; see shaders/README.md for its measured effect.

flat in vec3 v_color;
flat in float v_opacity;
flat in vec3 v_conic;
flat in vec2 v_mean;
flat in float v_depth;

layout(location = 0) out vec4 o_color;
layout(location = 1) out vec4 o_aux;

void main() {
    vec2 d = v_mean - gl_FragCoord.xy;
    float power = -0.5 * (v_conic.x * d.x * d.x + v_conic.z * d.y * d.y) - v_conic.y * d.x * d.y;
    if (power > 0.0) discard;
    float alpha = min(0.99, v_opacity * exp(power));
    if (alpha < 1.0 / 255.0) discard;
    o_color = vec4(v_color * alpha, alpha);
    o_aux = vec4(v_depth * alpha, alpha, 0.0, alpha);
}
