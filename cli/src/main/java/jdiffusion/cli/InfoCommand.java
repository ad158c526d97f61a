package jdiffusion.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import jdiffusion.io.Checkpoint;
import jdiffusion.io.CheckpointLayouts;
import jdiffusion.io.CheckpointLayouts.TextLayout;
import jdiffusion.io.MappedWeights;
import jdiffusion.io.ModelFormatException;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.TensorInfo;
import jdiffusion.lora.LoraFile;
import jdiffusion.lora.LoraInfo;
import jdiffusion.lora.LoraInfoPrinter;
import jdiffusion.model.ModelConfig;
import jdiffusion.model.ModelConfig.ComponentStats;
import jdiffusion.model.ModelConfig.TextEncoderSpec;
import jdiffusion.model.ModelConfig.UNetSpec;
import jdiffusion.model.ModelConfig.VaeSpec;
import jdiffusion.model.ModelDetector;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** {@code jdiffusion info FILE}: family, architecture numbers, parameters and dtype per component (header only). */
@Command(name = "info", mixinStandardHelpOptions = true,
        description = "Show what a checkpoint is: family, architecture numbers, parameter count and dtype per component; "
                + "for a LoRA file: format, target family, ranks, alphas and modules per component. "
                + "Reads only the file header.")
public final class InfoCommand implements Callable<Integer> {
    @Parameters(paramLabel = "FILE", description = "checkpoint (.safetensors), a UNet file alone, or a LoRA (LoHa, LoKr) file")
    Path file;

    @Option(names = "--unet", paramLabel = "FILE", description = "replace the checkpoint's UNet (LDM or diffusers layout)")
    Path unet;

    @Option(names = "--vae", paramLabel = "FILE", description = "replace the checkpoint's VAE (LDM or diffusers layout)")
    Path vae;

    @Option(names = "--json", description = "print JSON instead of text")
    boolean json;

    @Override
    public Integer call() throws Exception {
        PrintStream out = System.out;
        if (unet == null && vae == null && (printLora(out) || printSd3(out))) {
            return 0;
        }
        Checkpoint ckpt;
        try {
            ckpt = Checkpoint.open(file);
        } catch (ModelFormatException e) {
            if (unet == null && vae == null && (printUnetAlone(out) || printT5Alone(out))) {
                return 0;
            }
            throw e;
        }
        try (ckpt; Checkpoint withUnet = unet == null ? ckpt : ckpt.withUnet(unet);
             Checkpoint c = vae == null ? withUnet : withUnet.withVae(vae)) {
            if (json) {
                out.println(json(c));
            } else {
                printText(out, c);
            }
        }
        return 0;
    }

    private String json(Checkpoint c) throws Exception {
        Map<String, Object> root = new LinkedHashMap<>();
        root.put("file", c.path().toString());
        if (c.unetPath() != null) {
            root.put("unet_file", c.unetPath().toString());
        }
        if (c.vaePath() != null) {
            root.put("vae_file", c.vaePath().toString());
        }
        root.put("tensors", c.file().names().size());
        root.put("metadata", c.metadata());
        root.put("config", c.config());
        return new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValueAsString(root);
    }

    private static void printText(PrintStream out, Checkpoint c) {
        ModelConfig cfg = c.config();
        long bytes = c.file().tensors().values().stream().mapToLong(t -> t.end() - t.begin()).sum();
        out.printf("%s: %s checkpoint, %d tensors, %s%n", c.path(), cfg.family(), c.file().names().size(), size(bytes));
        if (c.unetPath() != null) {
            out.printf("  UNet from %s%n", c.unetPath());
        }
        if (c.vaePath() != null) {
            out.printf("  VAE from %s%n", c.vaePath());
        }
        if (!c.metadata().isEmpty()) {
            out.printf("  metadata: %s%n", abbreviate(c.metadata()));
        }
        out.printf("prediction: %s (%s)%n", cfg.prediction().name().toLowerCase(Locale.ROOT), cfg.predictionSource());
        printUnet(out, cfg.unet());
        VaeSpec v = cfg.vae();
        out.printf("vae:  base channels %d, channel mult %s, %d res blocks (decoder %d), latent channels %d, scale %s%n",
                v.baseChannels(), v.channelMult(), v.numResBlocks(), v.decoderResBlocks(), v.latentChannels(),
                cfg.family().latentScale());
        for (TextEncoderSpec t : cfg.textEncoders()) {
            out.printf("%s: %s, width %d, %d layers, %d heads, MLP %d, vocab %d, %d positions, %s%s%n", t.name(),
                    t.layout() == TextLayout.OPEN_CLIP ? "OpenCLIP" : "CLIP (HF)", t.width(), t.layers(), t.heads(),
                    t.mlpWidth(), t.vocab(), t.positions(), t.activation(),
                    t.projectionDim() > 0 ? ", projection " + t.projectionDim() : "");
        }
        out.println();
        out.printf("%-10s %15s %8s %10s %8s%n", "component", "parameters", "dtype", "size", "tensors");
        long total = 0;
        for (ComponentStats s : cfg.components()) {
            out.printf("%-10s %15s %8s %10s %8d%n", s.component(), String.format(Locale.ROOT, "%,d", s.parameters()),
                    s.dtype() == null ? "-" : s.dtype(), size(s.bytes()), s.tensors());
            total += s.parameters();
        }
        out.printf("%-10s %15s%n", "total", String.format(Locale.ROOT, "%,d", total));
    }

    private static void printUnet(PrintStream out, UNetSpec u) {
        out.printf("unet: model channels %d, channel mult %s, %d res blocks per level, transformer depth %s (middle %d), "
                        + "context %d, %s proj_in, %s%s, in/out channels %d/%d%n",
                u.modelChannels(), u.channelMult(), u.numResBlocks(), u.transformerDepth(), u.transformerDepthMiddle(),
                u.contextDim(), u.linearProj() ? "linear" : "conv 1x1",
                u.numHeads() > 0 ? u.numHeads() + " heads" : "head size " + u.headDim(),
                u.admInChannels() > 0 ? ", adm in " + u.admInChannels() : "", u.inChannels(), u.outChannels());
    }

    /**
     * A LoRA / LoHa / LoKr file: format, target family, ranks, alphas, modules per component; false when the file is
     * no LoRA (or cannot be read: the checkpoint path reports that).
     */
    private boolean printLora(PrintStream out) throws Exception {
        SafeTensors st;
        try {
            st = SafeTensors.open(file);
        } catch (ModelFormatException | RuntimeException e) {
            return false;
        }
        try (st) {
            if (!LoraFile.isLora(st)) {
                return false;
            }
            LoraInfo info = LoraInfo.describe(st);
            if (json) {
                Map<String, Object> root = new LinkedHashMap<>();
                root.put("file", file.toString());
                root.put("kind", "lora");
                root.put("format", info.format());
                root.put("family", info.family().label());
                root.put("ranks", info.ranks());
                root.put("alphas", info.alphas());
                root.put("modules_without_alpha", info.missingAlpha());
                Map<String, Integer> modules = new LinkedHashMap<>();
                info.modules().forEach((c, n) -> modules.put(c.label(), n));
                root.put("modules", modules);
                root.put("module_count", info.moduleCount());
                root.put("conv_modules", info.conv());
                root.put("keys", info.keys());
                root.put("unrecognized_keys", info.unrecognizedKeys());
                root.put("metadata", info.metadata());
                out.println(new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValueAsString(root));
            } else {
                LoraInfoPrinter.lines(info).forEach(out::println);
            }
            return true;
        }
    }

    /** An SD3 / SD3.5 single file (MMDiT): family, architecture and parameters per component, or false. */
    private boolean printSd3(PrintStream out) throws Exception {
        SafeTensors st;
        try {
            st = SafeTensors.open(file);
        } catch (ModelFormatException | RuntimeException e) {
            return false;
        }
        try (st) {
            if (!ModelDetector.isSd3(st)) {
                return false;
            }
            jdiffusion.model.mmdit.Sd3Config c = ModelDetector.detectSd3(st);
            if (json) {
                Map<String, Object> root = new LinkedHashMap<>();
                root.put("file", file.toString());
                root.put("tensors", st.names().size());
                root.put("metadata", st.metadata());
                root.put("config", c);
                out.println(new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValueAsString(root));
                return true;
            }
            long bytes = st.tensors().values().stream().mapToLong(t -> t.end() - t.begin()).sum();
            out.printf("%s: %s checkpoint (%s), %d tensors, %s%n", file, c.family(), c.mmdit().variant(),
                    st.names().size(), size(bytes));
            out.println("prediction: flow (rectified flow, velocity; shift 3.0)");
            c.describe().forEach(out::println);
            out.println();
            out.printf("%-10s %15s %8s %10s %8s%n", "component", "parameters", "dtype", "size", "tensors");
            long total = 0;
            for (ComponentStats s : c.components()) {
                out.printf("%-10s %15s %8s %10s %8d%n", s.component(), String.format(Locale.ROOT, "%,d",
                        s.parameters()), s.dtype() == null ? "-" : s.dtype(), size(s.bytes()), s.tensors());
                total += s.parameters();
            }
            out.printf("%-10s %15s%n", "total", String.format(Locale.ROOT, "%,d", total));
            return true;
        }
    }

    /** A UNet without the rest (e.g. sdxl_lightning_4step_unet.safetensors): print what it is, or false. */
    private boolean printUnetAlone(PrintStream out) {
        try (SafeTensors st = SafeTensors.open(file)) {
            MappedWeights w = Checkpoint.unetWeights(st);
            UNetSpec u = ModelDetector.detectUnet(w, file.toString());
            List<TensorInfo> infos = new ArrayList<>();
            for (String n : w.names()) {
                infos.add(w.info(n));
            }
            ComponentStats s = ModelDetector.stats("unet", infos);
            String layout = CheckpointLayouts.isDiffusersUnet(st.names()) ? "diffusers" : "LDM";
            String family = u.admInChannels() > 0 ? "SDXL" : u.linearProj() ? "SD2" : "SD1";
            if (json) {
                Map<String, Object> root = new LinkedHashMap<>();
                root.put("file", file.toString());
                root.put("kind", "unet");
                root.put("layout", layout);
                root.put("family", family);
                root.put("unet", u);
                root.put("stats", s);
                out.println(new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValueAsString(root));
            } else {
                out.printf("%s: UNet alone (%s layout, %s-style), %d tensors; use it with --unet beside a checkpoint%n",
                        file, layout, family, st.names().size());
                printUnet(out, u);
                out.printf("parameters %s, dtype %s, %s%n", String.format(Locale.ROOT, "%,d", s.parameters()), s.dtype(),
                        size(s.bytes()));
            }
            return true;
        } catch (Exception e) {
            return false;
        }
    }

    /** A T5 encoder alone (t5xxl_fp16.safetensors, t5xxl_fp8_e4m3fn.safetensors): what it is, or false. */
    private boolean printT5Alone(PrintStream out) {
        try (SafeTensors st = SafeTensors.open(file)) {
            String prefix = jdiffusion.model.t5.T5Encoder.prefixIn(st);
            if (prefix == null) {
                return false;
            }
            jdiffusion.model.t5.T5Encoder.Config c = jdiffusion.model.t5.T5Encoder.detect(
                    jdiffusion.io.Weights.prefixed(st, prefix));
            List<TensorInfo> infos = new ArrayList<>();
            for (String n : st.names()) {
                if (n.startsWith(prefix)) {
                    infos.add(st.info(n));
                }
            }
            ComponentStats s = ModelDetector.stats("t5", infos);
            if (json) {
                Map<String, Object> root = new LinkedHashMap<>();
                root.put("file", file.toString());
                root.put("kind", "t5");
                root.put("prefix", prefix);
                root.put("t5", c);
                root.put("stats", s);
                out.println(new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValueAsString(root));
            } else {
                out.printf("%s: T5 encoder alone, %d tensors; use it as the T5 of an SD3 / SD3.5 checkpoint%n", file,
                        st.names().size());
                out.printf("t5: d_model %d, %d blocks, %d heads x %d, %s d_ff %d, vocab %d, %d position buckets%n",
                        c.dModel(), c.layers(), c.heads(), c.dKv(), c.gated() ? "gated-GELU" : "ReLU", c.dFf(),
                        c.vocabSize(), c.buckets());
                out.printf("parameters %s, dtype %s, %s%n", String.format(Locale.ROOT, "%,d", s.parameters()), s.dtype(),
                        size(s.bytes()));
            }
            return true;
        } catch (Exception e) {
            return false;
        }
    }

    private static String abbreviate(Map<String, String> meta) {
        StringBuilder b = new StringBuilder();
        for (Map.Entry<String, String> e : meta.entrySet()) {
            String v = e.getValue().replace('\n', ' ');
            b.append(b.isEmpty() ? "" : ", ").append(e.getKey()).append('=').append(v.length() > 60 ? v.substring(0, 60) + "..." : v);
        }
        return b.toString();
    }

    static String size(long bytes) {
        if (bytes >= 1L << 30) {
            return String.format(Locale.ROOT, "%.2f GB", bytes / (double) (1L << 30));
        }
        if (bytes >= 1L << 20) {
            return String.format(Locale.ROOT, "%.1f MB", bytes / (double) (1L << 20));
        }
        return String.format(Locale.ROOT, "%.1f KB", bytes / 1024.0);
    }
}
