package jdiffusion.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import jdiffusion.Golden;
import jdiffusion.io.TorchSaveWriter.Ordered;
import jdiffusion.io.TorchSaveWriter.Raw;
import jdiffusion.io.TorchSaveWriter.T;
import jdiffusion.model.ControlNet;
import jdiffusion.model.ControlResiduals;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * ControlNets as PyTorch pickles ({@code control_v11p_sd15_canny.pth} is one): read through the safe pickle reader
 * they give the same residuals as the safetensors file; a hostile pickle is refused with a one-line error naming the
 * global, both at the model level and through the pipeline.
 */
class ControlNetPthTest {
    @TempDir
    Path dir;

    @Test
    void pthControlNetGivesTheSafetensorsResiduals() throws Exception {
        Path st = Golden.model("tiny-sd1-controlnet-fp16.safetensors");
        Path pth = dir.resolve("tiny-cn.pth");
        try (SafeTensors src = SafeTensors.open(st)) {
            TorchSaveWriter.convert(src, pth, null, false);
        }
        ControlResiduals fromSt;
        ControlResiduals fromPth;
        try (SafeTensors a = SafeTensors.open(st); SafeTensors b = SafeTensors.open(pth)) {
            assertEquals(Container.TORCH_ZIP, b.container());
            fromSt = run(ControlNet.load(ControlNetWeights.of(a)));
            fromPth = run(ControlNet.load(ControlNetWeights.of(b)));
        }
        for (int i = 0; i < fromSt.down().size(); i++) {
            Golden.assertClose("down " + i, fromSt.down().get(i).data(), fromPth.down().get(i).data(), 0);
        }
        Golden.assertClose("mid", fromSt.mid().data(), fromPth.mid().data(), 0);
    }

    private static ControlResiduals run(ControlNet net) {
        int h = 8;
        int w = 8;
        float[] x = new float[4 * h * w];
        float[] hint = new float[3 * 64 * 64];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) Math.sin(i * 0.37);
        }
        for (int i = 0; i < hint.length; i++) {
            hint[i] = (i * 7919 % 255) / 255f;
        }
        float[] ctx = new float[77 * net.config().contextDim()];
        for (int i = 0; i < ctx.length; i++) {
            ctx[i] = (float) Math.cos(i * 0.11);
        }
        return net.forward(x, 1, h, w, new float[] {500}, ctx, 77, null, net.encodeHint(hint, 1, 64, 64), 0.8f);
    }

    @Test
    void hostileControlNetPickleIsRefused() throws Exception {
        Map<String, Object> sd = new LinkedHashMap<>();
        sd.put("control_model.input_hint_block.0.weight", T.contiguous("0", DType.F32, 1));
        ByteArrayOutputStream payload = new ByteArrayOutputStream();
        payload.write('c');
        payload.writeBytes("os\nsystem\n".getBytes(StandardCharsets.US_ASCII));
        payload.writeBytes(new byte[] {'X', 4, 0, 0, 0, 'e', 'c', 'h', 'o', (byte) 0x85, 'R'});
        sd.put("control_model.zero_convs.0.0.weight", new Raw(payload.toByteArray()));
        byte[] file = TorchSaveWriter.zip("evil", new Ordered(sd), Map.of("0", new byte[4]), false);
        Path evil = dir.resolve("evil.pth");
        Files.write(evil, file);
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> {
            try (SafeTensors f = SafeTensors.open(evil)) {
                ControlNet.load(ControlNetWeights.of(f));
            }
        });
        assertTrue(e.getMessage().contains("refused pickle global 'os.system'"), e.getMessage());
        assertTrue(e.getMessage().contains("evil.pth"), e.getMessage());
        assertFalse(e.getMessage().contains("\n"));

        Path hint = Golden.dir().resolve("controlnet/pipe_sd1_controlnet_euler.hint.png");
        var request = jdiffusion.pipeline.GenerateRequest.builder(Golden.model("tiny-sd1-fp16.safetensors"))
                .size(64, 64).steps(1).seed(1L)
                .controls(List.of(new jdiffusion.pipeline.GenerateRequest.ControlSpec(evil, hint, 1.0))).build();
        var g = assertThrows(jdiffusion.pipeline.GenerateException.class, () -> jdiffusion.pipeline.Pipeline.generate(
                request, jdiffusion.pipeline.ProgressListener.NONE, jdiffusion.pipeline.CancellationToken.none()));
        assertTrue(g.getMessage().contains("refused pickle global 'os.system'"), g.getMessage());
        assertFalse(g.getMessage().contains("\n"));
    }
}
