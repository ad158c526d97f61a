package jdiffusion.workflow;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.List;
import jdiffusion.Golden;
import jdiffusion.io.ControlNetWeights;
import jdiffusion.io.DType;
import jdiffusion.io.MappedWeights;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.SafeTensorsWriter;
import jdiffusion.io.Weights;
import jdiffusion.model.ControlNet;
import jdiffusion.model.ControlResiduals;
import jdiffusion.workflow.Values.ControlNetRef;
import jdiffusion.workflow.Values.ModelRef;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * DiffControlNetLoader: a "difference" ControlNet (its encoder tensors stored minus the base UNet's, marked by a
 * {@code difference} tensor, as ComfyUI reads them) loaded against its base MODEL gives the full ControlNet's
 * residuals; without the base it would not.
 */
class DiffControlNetTest {
    @TempDir
    Path dir;

    @Test
    void differenceControlNetPlusTheBaseIsTheFullOne() throws Exception {
        Path full = Golden.model("tiny-sd1-controlnet-fp16.safetensors");
        Path checkpoint = Golden.model("tiny-sd1-fp16.safetensors");
        Path diff = dir.resolve("diff-cn.safetensors");
        try (SafeTensors cn = SafeTensors.open(full); SafeTensors ckpt = SafeTensors.open(checkpoint)) {
            SafeTensorsWriter w = SafeTensorsWriter.to(diff);
            for (String name : cn.names()) {
                String base = "model.diffusion_model." + name.substring("control_model.".length());
                float[] v = cn.floats(name);
                if (ckpt.contains(base)) {
                    float[] b = ckpt.floats(base);
                    for (int i = 0; i < v.length; i++) {
                        v[i] -= b[i];
                    }
                }
                w.add(name, DType.F32, cn.info(name).shape(), v);
            }
            w.add("difference", DType.F32, new long[] {1}, new float[] {0});
            w.write();
        }
        ControlResiduals expected;
        try (SafeTensors cn = SafeTensors.open(full)) {
            expected = run(ControlNet.load(ControlNetWeights.of(cn)));
        }
        try (ModelCache cache = new ModelCache(1L << 30)) {
            ControlNet loaded = ControlNetNodes.load(cache, new ControlNetRef(diff,
                    new ModelRef(checkpoint, false, List.of(), null, false)));
            ControlResiduals got = run(loaded);
            for (int i = 0; i < expected.down().size(); i++) {
                Golden.assertClose("down " + i, expected.down().get(i).data(), got.down().get(i).data(), 1e-5);
            }
            Golden.assertClose("mid", expected.mid().data(), got.mid().data(), 1e-5);
            ControlResiduals alone = run(ControlNetNodes.load(cache, new ControlNetRef(diff, null)));
            assertTrue(Golden.maxAbsDiff(expected.mid().data(), alone.mid().data()) > 1e-3,
                    "the difference alone is another network");
        }
    }

    private static ControlResiduals run(ControlNet net) {
        float[] x = new float[4 * 8 * 8];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) Math.sin(i * 0.3);
        }
        float[] hint = new float[3 * 64 * 64];
        for (int i = 0; i < hint.length; i++) {
            hint[i] = (i % 7) / 7f;
        }
        float[] ctx = new float[77 * 64];
        for (int i = 0; i < ctx.length; i++) {
            ctx[i] = (float) Math.cos(i * 0.05);
        }
        return net.forward(x, 1, 8, 8, new float[] {400}, ctx, 77, null, net.encodeHint(hint, 1, 64, 64), 1f);
    }
}
