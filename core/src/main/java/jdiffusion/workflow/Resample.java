package jdiffusion.workflow;

import jdiffusion.tensor.Interpolate;

/** ComfyUI's common_upscale for the nodes (see {@link Interpolate}); bad arguments become workflow errors. */
final class Resample {
    private Resample() {
    }

    /** planes = batch * channels, each h x w, to newH x newW; planes are independent (not for bislerp). */
    static float[] upscale(float[] src, int planes, int h, int w, int newW, int newH, String method, String crop) {
        if ("bislerp".equals(method)) {
            throw new WorkflowException("bislerp needs the channel count: call it with batch and channels");
        }
        return upscale(src, planes, 1, h, w, newW, newH, method, crop);
    }

    /** NCHW [batch][channels][h][w] to [batch][channels][newH][newW]. */
    static float[] upscale(float[] src, int batch, int channels, int h, int w, int newW, int newH, String method,
            String crop) {
        try {
            return Interpolate.upscale(src, batch, channels, h, w, newW, newH, method, crop);
        } catch (IllegalArgumentException e) {
            throw new WorkflowException(e.getMessage());
        }
    }
}
