package jdiffusion.workflow;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import jdiffusion.io.ModelFormatException;
import jdiffusion.model.Taesd;
import jdiffusion.workflow.Values.Image;
import jdiffusion.workflow.Values.Latent;
import jdiffusion.workflow.Values.VaeRef;

/**
 * ComfyUI's VAELoader with the TAESD names ({@code taesd}, {@code taesdxl}, {@code taesd3}): listed when both
 * {@code <name>_encoder.*} and {@code <name>_decoder.*} are in {@code models/vae_approx}; VAEDecode computes
 * clamp(decoder((raw - shift) * scale), 0, 1) and VAEEncode encoder(image01) / scale + shift with ComfyUI's
 * vae_scale / vae_shift (0.18215 / 0; 0.13025 / 0; 1.5305 / 0.0609).
 */
final class TaesdNodes {
    private static final List<String> NAMES = List.of("taesd", "taesdxl", "taesd3");
    private static final Map<Path, Taesd> LOADED = new ConcurrentHashMap<>();

    private TaesdNodes() {
    }

    static void register() {
        NodeDefinition loader = Nodes.get("VAELoader");
        InputSpec name = loader.input("vae_name");
        InputSpec withTaesd = new InputSpec(name.name(), name.type(), name.optional(), name.defaultValue(), name.min(),
                name.max(), name.step(), name.round(), p -> {
                    List<String> all = new ArrayList<>(name.choices().list(p));
                    all.addAll(available(p));
                    return all;
                }, name.extra());
        Nodes.add(new NodeDefinition(loader.name(), loader.displayName(), loader.category(), loader.description(),
                loader.outputNode(), List.of(withTaesd), loader.outputTypes(), loader.outputNames(), loader.hidden(),
                (in, ctx) -> {
                    String n = (String) in.get("vae_name");
                    if (NAMES.contains(n)) {
                        return NodeResult.of(new VaeRef(decoderFile(ctx.paths(), n)));
                    }
                    return loader.function().run(in, ctx);
                }));
        wrap("VAEDecode", TaesdNodes::decode);
        wrap("VAEEncode", TaesdNodes::encode);
    }

    private static void wrap(String node, NodeDefinition.Function taesd) {
        NodeDefinition d = Nodes.get(node);
        Nodes.add(new NodeDefinition(d.name(), d.displayName(), d.category(), d.description(), d.outputNode(),
                d.inputs(), d.outputTypes(), d.outputNames(), d.hidden(), (in, ctx) -> {
                    NodeResult r = taesd.run(in, ctx);
                    return r != null ? r : d.function().run(in, ctx);
                }));
    }

    /** The TAESD names whose encoder and decoder files are both present. */
    static List<String> available(ModelPaths p) {
        List<String> files = p.list("vae_approx");
        List<String> out = new ArrayList<>();
        for (String n : NAMES) {
            boolean enc = files.stream().anyMatch(f -> f.startsWith(n + "_encoder."));
            boolean dec = files.stream().anyMatch(f -> f.startsWith(n + "_decoder."));
            if (enc && dec) {
                out.add(n);
            }
        }
        return out;
    }

    private static Path decoderFile(ModelPaths p, String name) {
        for (String f : p.list("vae_approx")) {
            if (f.startsWith(name + "_decoder.")) {
                return p.resolve("vae_approx", f);
            }
        }
        throw new WorkflowException("VAELoader: no " + name + "_decoder in models/vae_approx");
    }

    /** The TAESD of a VaeRef that VAELoader made from a TAESD name, else null. */
    private static Taesd taesdOf(VaeRef ref) {
        Path f = ref.file();
        String file = f.getFileName().toString();
        String n = file.contains("_decoder.") ? file.substring(0, file.indexOf("_decoder.")) : null;
        if (n == null || !NAMES.contains(n) || f.getParent() == null
                || !f.getParent().getFileName().toString().equals("vae_approx")) {
            return null;
        }
        return LOADED.computeIfAbsent(f, k -> {
            Path enc = null;
            try (var s = Files.list(k.getParent())) {
                enc = s.filter(x -> x.getFileName().toString().startsWith(n + "_encoder.")).findFirst().orElse(null);
            } catch (java.io.IOException e) {
                // decode-only
            }
            try {
                return Taesd.open(k, enc);
            } catch (ModelFormatException e) {
                throw new WorkflowException("VAELoader: " + e.getMessage());
            }
        });
    }

    /** ComfyUI's vae_scale / vae_shift of a TAESD name (nodes.py VAELoader). */
    private static float[] scaleShift(VaeRef ref) {
        String file = ref.file().getFileName().toString();
        if (file.startsWith("taesdxl_")) {
            return new float[] {0.13025f, 0f};
        }
        if (file.startsWith("taesd3_")) {
            return new float[] {1.5305f, 0.0609f};
        }
        return new float[] {0.18215f, 0f};
    }

    private static NodeResult decode(Map<String, Object> in, NodeContext ctx) {
        VaeRef ref = (VaeRef) in.get("vae");
        Taesd t = taesdOf(ref);
        if (t == null) {
            return null;
        }
        Latent s = (Latent) in.get("samples");
        if (s.channels() != t.latentChannels()) {
            throw new WorkflowException("VAEDecode: the latent has " + s.channels() + " channels, this TAESD takes "
                    + t.latentChannels());
        }
        float[] ss = scaleShift(ref);
        float[] x = t.comfyDecode(s.samples(), s.batch(), s.height(), s.width(), ss[0], ss[1]);
        return NodeResult.of(new Image(x, s.batch(), s.height() * 8, s.width() * 8));
    }

    private static NodeResult encode(Map<String, Object> in, NodeContext ctx) {
        VaeRef ref = (VaeRef) in.get("vae");
        Taesd t = taesdOf(ref);
        if (t == null) {
            return null;
        }
        if (!t.canEncode()) {
            throw new WorkflowException("VAEEncode: no " + ref.file().getFileName().toString()
                    .replace("_decoder.", "_encoder.") + " in models/vae_approx");
        }
        Image img = (Image) in.get("pixels");
        int h = img.height() / 8 * 8;
        int w = img.width() / 8 * 8;
        if (h == 0 || w == 0) {
            throw new WorkflowException("VAEEncode: image " + img.width() + "x" + img.height() + " is smaller than 8 pixels");
        }
        int y0 = (img.height() % 8) / 2;
        int x0 = (img.width() % 8) / 2;
        float[] crop = new float[img.batch() * 3 * h * w];
        for (int b = 0; b < img.batch(); b++) {
            for (int c = 0; c < 3; c++) {
                for (int y = 0; y < h; y++) {
                    System.arraycopy(img.pixels(), ((b * 3 + c) * img.height() + y + y0) * img.width() + x0, crop,
                            ((b * 3 + c) * h + y) * w, w);
                }
            }
        }
        float[] ss = scaleShift(ref);
        float[] z = t.comfyEncode(crop, img.batch(), h, w, ss[0], ss[1]);
        return NodeResult.of(new Latent(z, img.batch(), t.latentChannels(), h / 8, w / 8));
    }
}
