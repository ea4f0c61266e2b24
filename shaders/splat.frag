#version 330 core
// 3D Gaussian splatting, fragment stage: Gaussian falloff and premultiplied output for back-to-front blending.
//
// Per pixel (spec 4.4): alpha = min(0.99, opacity * exp(-1/2 d^T S^-1 d)); skipped when the exponent is
// positive or alpha < 1/255. Quads arrive sorted back to front and the fixed-function blend is
//     glBlendFunc(ONE, ONE_MINUS_SRC_ALPHA)   ("over" with premultiplied colour, every channel)
// so with attachment 0 cleared to (background, 0) and attachment 1 to 0:
//     attachment 0 rgb = sum_i c_i w_i + T * background,  a = 1 - T = 1 - prod_i (1 - alpha_i)  (alpha)
//     attachment 1 r   = sum_i z_i w_i (depth_accum; R32F, only drawn when WITH_DEPTH is defined)
// with w_i = alpha_i prod_{j in front of i} (1 - alpha_j): the same sums as front-to-back compositing.
// The blend uses the fragment's alpha for both attachments, whatever the target's channels.
// Without WITH_DEPTH (rgb and alpha modes) only attachment 0 exists in the draw: on llvmpipe every extra
// float attachment is one more read-modify-write per fragment.
// The reference's early stop (a pixel stops before the Gaussian that would bring T below 1e-4) has no
// blending equivalent; see shaders/README.md for its measured effect.

flat in vec3 v_color;
flat in float v_opacity;
flat in vec3 v_conic;
flat in vec2 v_mean;
flat in float v_depth;

layout(location = 0) out vec4 o_color;
#ifdef WITH_DEPTH
layout(location = 1) out vec4 o_aux;
#endif

void main() {
    vec2 d = v_mean - gl_FragCoord.xy;
    float power = -0.5 * (v_conic.x * d.x * d.x + v_conic.z * d.y * d.y) - v_conic.y * d.x * d.y;
    if (power > 0.0) discard;
    float alpha = min(0.99, v_opacity * exp(power));
    if (alpha < 1.0 / 255.0) discard;
    o_color = vec4(v_color * alpha, alpha);
#ifdef WITH_DEPTH
    o_aux = vec4(v_depth * alpha, 0.0, 0.0, alpha);
#endif
}
