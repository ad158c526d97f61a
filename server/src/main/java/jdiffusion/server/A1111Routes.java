package jdiffusion.server;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.javalin.Javalin;
import io.javalin.http.Context;
import io.javalin.http.Handler;
import java.awt.image.BufferedImage;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.stream.Stream;
import javax.imageio.ImageIO;
import jdiffusion.io.PngReader;
import jdiffusion.io.SafeTensors;
import jdiffusion.sampling.Samplers;

/**
 * AUTOMATIC1111's web API ({@code /sdapi/v1/...}) with its JSON shapes, as SillyTavern, Open WebUI, Krita's plugins
 * and chat bots call it: options (the checkpoint switch, VAE, CLIP skip), model / sampler / scheduler / upscaler /
 * LoRA / embedding lists, progress with a preview, interrupt and skip, PNG info, memory and flags, and txt2img /
 * img2img (with {@code <lora:name:weight>} tags, override_settings, send_images, save_images, and {@code info} as
 * A1111's JSON string). Each generation is an API-format prompt on the shared queue ({@link ApiJobs}). Errors are
 * A1111's {@code {error, detail, body, errors}}.
 */
final class A1111Routes {
    private static final SecureRandom RANDOM = new SecureRandom();
    private static final String OPTIONS_FILE = "jdiffusion-a1111-options.json";
    private static final String VERSION = "jdiffusion";

    /** A1111's sampler names (as its /samplers lists them) with their aliases; those with a ComfyUI sampler show. */
    private static final String[][] SAMPLERS = {
            {"DPM++ 2M", "k_dpmpp_2m"}, {"DPM++ SDE", "k_dpmpp_sde"}, {"DPM++ 2M SDE", "k_dpmpp_2m_sde"},
            {"DPM++ 2S a", "k_dpmpp_2s_a"}, {"DPM++ 3M SDE", "k_dpmpp_3m_sde"}, {"Euler a", "k_euler_a"},
            {"Euler", "k_euler"}, {"LMS", "k_lms"}, {"Heun", "k_heun"}, {"DPM2", "k_dpm_2"}, {"DPM2 a", "k_dpm_2_a"},
            {"DPM fast", "k_dpm_fast"}, {"DPM adaptive", "k_dpm_ad"}, {"DDIM", "ddim"}, {"UniPC", "unipc"},
            {"LCM", "k_lcm"}, {"DDPM", "ddpm"}, {"DEIS", "deis"}, {"IPNDM", "ipndm"}};

    /** A1111's schedulers: name, label, default rho, need_inner_model. */
    private static final Object[][] SCHEDULERS = {
            {"automatic", "Automatic", -1.0, false}, {"uniform", "Uniform", -1.0, true},
            {"karras", "Karras", 7.0, false}, {"exponential", "Exponential", -1.0, false},
            {"sgm_uniform", "SGM Uniform", -1.0, true}, {"kl_optimal", "KL Optimal", -1.0, false},
            {"simple", "Simple", -1.0, true}, {"normal", "Normal", -1.0, true}, {"ddim", "DDIM", -1.0, true},
            {"beta", "Beta", -1.0, true}};

    private final ApiJobs jobs;
    private final ObjectNode options;
    private final Path optionsFile;

    A1111Routes(ApiJobs jobs) {
        this.jobs = jobs;
        this.optionsFile = jobs.paths().base().resolve(OPTIONS_FILE);
        this.options = loadOptions();
    }

    void register(Javalin app) {
        get(app, "options", this::getOptions);
        post(app, "options", this::postOptions);
        get(app, "sd-models", this::sdModels);
        post(app, "refresh-checkpoints", A1111Routes::none);
        post(app, "refresh-vae", A1111Routes::none);
        get(app, "sd-vae", this::sdVae);
        get(app, "samplers", this::samplers);
        get(app, "schedulers", this::schedulers);
        // upscalers, latent-upscale-modes and extra-single-image: UpscaleRoutes
        get(app, "loras", this::loras);
        post(app, "refresh-loras", A1111Routes::none);
        get(app, "embeddings", this::embeddings);
        post(app, "refresh-embeddings", A1111Routes::none);
        get(app, "progress", this::progress);
        post(app, "interrupt", ctx -> {
            jobs.server().runner().interrupt(null);
            none(ctx);
        });
        post(app, "skip", ctx -> {
            jobs.server().runner().progress.requestSkip();
            jobs.server().runner().interrupt(null);
            none(ctx);
        });
        post(app, "png-info", this::pngInfo);
        get(app, "memory", this::memory);
        get(app, "cmd-flags", this::cmdFlags);
        get(app, "prompt-styles", ctx -> JDiffusionServer.json(ctx, PromptStore.JSON.createArrayNode()));
        get(app, "hypernetworks", ctx -> JDiffusionServer.json(ctx, PromptStore.JSON.createArrayNode()));
        get(app, "face-restorers", ctx -> JDiffusionServer.json(ctx, PromptStore.JSON.createArrayNode()));
        get(app, "realesrgan-models", ctx -> JDiffusionServer.json(ctx, PromptStore.JSON.createArrayNode()));
        get(app, "scripts", ctx -> {
            ObjectNode o = PromptStore.JSON.createObjectNode();
            o.putArray("txt2img");
            o.putArray("img2img");
            JDiffusionServer.json(ctx, o);
        });
        post(app, "txt2img", ctx -> generate(ctx, false));
        post(app, "img2img", ctx -> generate(ctx, true));
    }

    /** A1111's answer of the actions: JSON null. */
    private static void none(Context ctx) {
        JDiffusionServer.json(ctx, com.fasterxml.jackson.databind.node.NullNode.getInstance());
    }

    private void get(Javalin app, String route, Handler h) {
        app.get("/sdapi/v1/" + route, wrap(h));
    }

    private void post(Javalin app, String route, Handler h) {
        app.post("/sdapi/v1/" + route, wrap(h));
    }

    /** Errors in A1111's shape: {error: "HTTPException", detail, body, errors}. */
    private static Handler wrap(Handler h) {
        return ctx -> {
            try {
                h.handle(ctx);
            } catch (ApiError e) {
                if (e.body.path("detail").isArray()) {
                    throw e; // already A1111's validation shape (A1111Request): {error, detail: [...], body, errors}
                }
                String msg = e.body.path("error").isTextual() ? e.body.path("error").asText() : e.body.toString();
                ObjectNode o = PromptStore.JSON.createObjectNode();
                o.put("error", "HTTPException");
                o.put("detail", msg);
                o.put("body", "");
                o.put("errors", e.status + ": " + msg);
                throw new ApiError(e.status, o);
            }
        };
    }

    // ---- options ----

    private ObjectNode loadOptions() {
        ObjectNode o = PromptStore.JSON.createObjectNode();
        o.put("sd_model_checkpoint", "");
        o.put("sd_checkpoint_hash", "");
        o.put("sd_vae", "Automatic");
        o.put("CLIP_stop_at_last_layers", 1);
        o.put("samples_save", true);
        o.put("samples_format", "png");
        o.put("save_images_add_number", true);
        o.put("outdir_samples", "");
        o.put("outdir_txt2img_samples", "output");
        o.put("outdir_img2img_samples", "output");
        o.put("enable_pnginfo", true);
        o.put("eta_noise_seed_delta", 0);
        o.put("sd_lora", "None");
        o.put("live_previews_enable", true);
        o.put("show_progress_every_n_steps", 1);
        o.put("upscaler_for_img2img", "None");
        o.put("img2img_fix_steps", false);
        o.put("sd_checkpoints_limit", 1);
        o.put("sdxl_refiner_low_aesthetic_score", 2.5);
        o.put("forge_additional_modules", "");
        try {
            if (Files.isRegularFile(optionsFile)) {
                JsonNode saved = PromptStore.JSON.readTree(optionsFile.toFile());
                if (saved != null && saved.isObject()) {
                    o.setAll((ObjectNode) saved);
                    String ckpt = saved.path("sd_model_checkpoint").asText("");
                    if (!ckpt.isBlank()) {
                        try {
                            jobs.setCurrentCheckpoint(ckpt);
                        } catch (ApiError e) {
                            // the file is gone: the first checkpoint is used
                        }
                    }
                }
            }
        } catch (IOException e) {
            // a broken options file: start from the defaults
        }
        return o;
    }

    private synchronized void getOptions(Context ctx) {
        String ckpt = jobs.currentCheckpoint();
        if (ckpt != null) {
            options.put("sd_model_checkpoint", title(ckpt));
            String h = hash(ckpt);
            options.put("sd_checkpoint_hash", h == null ? "" : h);
        }
        JDiffusionServer.json(ctx, options);
    }

    private synchronized void postOptions(Context ctx) throws IOException {
        JsonNode body = ApiError.readJson(ctx);
        ObjectNode checked = checkSettings(body);
        if (checked.has("sd_model_checkpoint")) {
            jobs.setCurrentCheckpoint(checked.get("sd_model_checkpoint").asText());
        }
        options.setAll(checked);
        Files.writeString(optionsFile, options.toPrettyString());
        none(ctx);
    }

    /** Settings (options or override_settings) with their values checked; 400 naming a bad one. */
    private ObjectNode checkSettings(JsonNode body) {
        ObjectNode out = ((ObjectNode) body).deepCopy();
        JsonNode ckpt = body.get("sd_model_checkpoint");
        if (ckpt != null && !ckpt.isNull()) {
            out.put("sd_model_checkpoint", jobs.checkpoint(ckpt.asText()));
        }
        JsonNode vae = body.get("sd_vae");
        if (vae != null && !vae.isNull()) {
            vaeFile(vae.asText());
        }
        JsonNode skip = body.get("CLIP_stop_at_last_layers");
        if (skip != null && !skip.isNull() && (!skip.canConvertToInt() || skip.asInt() < 1 || skip.asInt() > 12)) {
            throw ApiError.status(400, "CLIP_stop_at_last_layers must be an integer 1..12, not " + skip);
        }
        return out;
    }

    /** A VAE file for A1111's sd_vae: null for "Automatic" / "None" (the checkpoint's own VAE); 400 when unknown. */
    private String vaeFile(String name) {
        if (name == null || name.isBlank() || name.equals("Automatic") || name.equals("None")) {
            return null;
        }
        String f = jobs.find("vae", name);
        if (f == null) {
            throw ApiError.status(400, "VAE '" + name + "' is not in models/vae");
        }
        return f;
    }

    // ---- lists ----

    private String hash(String ckpt) {
        String sha = jobs.sha256(jobs.paths().resolve("checkpoints", ckpt));
        return sha == null ? null : sha.substring(0, 10);
    }

    private String title(String ckpt) {
        String h = hash(ckpt);
        return h == null ? ckpt : ckpt + " [" + h + "]";
    }

    private void sdModels(Context ctx) {
        ArrayNode out = PromptStore.JSON.createArrayNode();
        for (String c : jobs.paths().list("checkpoints")) {
            Path file = jobs.paths().resolve("checkpoints", c);
            String sha = jobs.sha256(file);
            ObjectNode m = out.addObject();
            m.put("title", sha == null ? c : c + " [" + sha.substring(0, 10) + "]");
            m.put("model_name", ApiJobs.stem(c).replace('/', '_'));
            m.put("hash", sha == null ? null : sha.substring(0, 10));
            m.put("sha256", sha);
            m.put("filename", file.toString());
            m.putNull("config");
        }
        JDiffusionServer.json(ctx, out);
    }

    private void sdVae(Context ctx) {
        ArrayNode out = PromptStore.JSON.createArrayNode();
        for (String v : jobs.paths().list("vae")) {
            ObjectNode m = out.addObject();
            m.put("model_name", v);
            m.put("filename", jobs.paths().resolve("vae", v).toString());
        }
        JDiffusionServer.json(ctx, out);
    }

    /** The A1111 samplers that map onto an implemented ComfyUI sampler. */
    static List<String[]> samplerList() {
        List<String[]> out = new ArrayList<>();
        for (String[] s : SAMPLERS) {
            try {
                String comfy = Workflows.sampler(s[0])[0];
                if (Samplers.isImplemented(comfy)) {
                    out.add(new String[] {s[0], s[1], comfy});
                }
            } catch (ApiError e) {
                // no ComfyUI sampler of that name
            }
        }
        return out;
    }

    private void samplers(Context ctx) {
        ArrayNode out = PromptStore.JSON.createArrayNode();
        for (String[] s : samplerList()) {
            ObjectNode o = out.addObject();
            o.put("name", s[0]);
            o.putArray("aliases").add(s[1]).add(s[2]);
            ObjectNode opts = o.putObject("options");
            if (s[0].contains("SDE") || s[0].endsWith(" a")) {
                opts.put("uses_ensd", "True");
            }
        }
        JDiffusionServer.json(ctx, out);
    }

    private void schedulers(Context ctx) {
        ArrayNode out = PromptStore.JSON.createArrayNode();
        for (Object[] s : SCHEDULERS) {
            try {
                Workflows.scheduler((String) s[0], null);
            } catch (ApiError e) {
                continue;
            }
            ObjectNode o = out.addObject();
            o.put("name", (String) s[0]);
            o.put("label", (String) s[1]);
            o.putNull("aliases");
            o.put("default_rho", (Double) s[2]);
            o.put("need_inner_model", (Boolean) s[3]);
        }
        JDiffusionServer.json(ctx, out);
    }

    private void loras(Context ctx) {
        ArrayNode out = PromptStore.JSON.createArrayNode();
        for (String l : jobs.paths().list("loras")) {
            Path file = jobs.paths().resolve("loras", l);
            ObjectNode o = out.addObject();
            String stem = ApiJobs.stem(l);
            o.put("name", stem.substring(stem.lastIndexOf('/') + 1));
            o.put("alias", stem.substring(stem.lastIndexOf('/') + 1));
            o.put("path", file.toString());
            ObjectNode meta = o.putObject("metadata");
            try (SafeTensors st = SafeTensors.open(file)) {
                st.metadata().forEach(meta::put);
            } catch (IOException | RuntimeException e) {
                // a LoRA whose header cannot be read still lists, without metadata
            }
        }
        JDiffusionServer.json(ctx, out);
    }

    /** A1111's {loaded: {name: {step, sd_checkpoint, sd_checkpoint_name, shape, vectors}}, skipped: {}}. */
    private void embeddings(Context ctx) throws IOException {
        ObjectNode out = PromptStore.JSON.createObjectNode();
        ObjectNode loaded = out.putObject("loaded");
        out.putObject("skipped");
        for (Path folder : jobs.paths().folders("embeddings")) {
            for (jdiffusion.text.Embeddings.Info info : jdiffusion.text.Embeddings.list(folder)) {
                ObjectNode e = loaded.putObject(info.name());
                e.putNull("step");
                e.putNull("sd_checkpoint");
                e.putNull("sd_checkpoint_name");
                Integer width = info.widths().isEmpty() ? null : info.widths().values().iterator().next();
                if (width == null) {
                    e.putNull("shape");
                } else {
                    e.put("shape", width);
                }
                e.put("vectors", info.vectors());
            }
        }
        JDiffusionServer.json(ctx, out);
    }

    private static List<Path> files(Path folder, String... extensions) throws IOException {
        if (!Files.isDirectory(folder)) {
            return List.of();
        }
        try (Stream<Path> s = Files.walk(folder, 8)) {
            return s.filter(Files::isRegularFile).filter(p -> {
                String n = p.getFileName().toString().toLowerCase(Locale.ROOT);
                for (String e : extensions) {
                    if (n.endsWith(e)) {
                        return true;
                    }
                }
                return false;
            }).sorted().toList();
        }
    }

    // ---- progress, png info, memory, flags ----

    private void progress(Context ctx) throws IOException {
        ProgressState.Snapshot s = jobs.server().runner().progress.snapshot();
        PromptStore store = jobs.server().store();
        int pending = store.pending().size();
        ObjectNode out = PromptStore.JSON.createObjectNode();
        double progress = 0;
        double eta = 0;
        if (s.running() && s.max() > 0) {
            progress = Math.min(1.0, (double) s.value() / s.max());
            double elapsed = (System.nanoTime() - s.startNanos()) / 1e9;
            eta = progress > 0 ? elapsed / progress - elapsed : 0;
        }
        out.put("progress", progress);
        out.put("eta_relative", eta);
        ObjectNode state = out.putObject("state");
        state.put("skipped", jobs.server().runner().progress.skipRequested());
        state.put("interrupted", false);
        state.put("stopping_generation", false);
        state.put("job", s.running() ? s.promptId() : "");
        state.put("job_count", (s.running() ? 1 : 0) + pending);
        state.put("job_timestamp", s.running() ? java.time.LocalDateTime.now().format(
                java.time.format.DateTimeFormatter.ofPattern("yyyyMMddHHmmss")) : "0");
        state.put("job_no", 0);
        state.put("sampling_step", s.value());
        state.put("sampling_steps", s.max());
        boolean skipImage = "true".equalsIgnoreCase(ctx.queryParam("skip_current_image"));
        if (!skipImage && s.latent() != null && s.shape() != null && s.format() != null) {
            byte[] rgb = LatentPreview.rgb(s.format(), s.latent(), s.shape());
            int h = s.shape()[2];
            int w = s.shape()[3];
            BufferedImage img = new BufferedImage(w, h, BufferedImage.TYPE_INT_RGB);
            for (int y = 0; y < h; y++) {
                for (int x = 0; x < w; x++) {
                    int i = (y * w + x) * 3;
                    img.setRGB(x, y, (rgb[i] & 255) << 16 | (rgb[i + 1] & 255) << 8 | (rgb[i + 2] & 255));
                }
            }
            ByteArrayOutputStream png = new ByteArrayOutputStream();
            ImageIO.write(img, "png", png);
            out.put("current_image", Base64.getEncoder().encodeToString(png.toByteArray()));
        } else {
            out.putNull("current_image");
        }
        if (s.running()) {
            out.put("textinfo", s.max() > 0 ? "Sampling step " + s.value() + " of " + s.max()
                    : "Running node " + (s.node() == null ? "" : s.node()));
        } else {
            out.putNull("textinfo");
        }
        out.put("current_task", s.running() ? s.promptId() : null);
        JDiffusionServer.json(ctx, out);
    }

    /** A1111's {info, items, parameters}: the "parameters" chunk, the other text chunks, and the parsed fields. */
    private void pngInfo(Context ctx) throws IOException {
        JsonNode body = ApiError.readJson(ctx);
        String data = body.path("image").asText("");
        if (data.isBlank()) {
            throw ApiError.status(400, "image is required (a base64 PNG)");
        }
        byte[] bytes = ApiJobs.base64(data, "image");
        Map<String, String> text;
        try {
            text = FileRoutes.isPng(bytes) ? PngReader.text(bytes) : Map.of();
        } catch (IOException | RuntimeException e) {
            throw ApiError.status(400, "image is not a readable PNG: " + e.getMessage());
        }
        ObjectNode out = PromptStore.JSON.createObjectNode();
        String info = unquote(text.getOrDefault("parameters", ""));
        out.put("info", info);
        ObjectNode items = out.putObject("items");
        text.forEach((k, v) -> {
            if (!k.equals("parameters")) {
                items.put(k, v);
            }
        });
        ObjectNode params = out.putObject("parameters");
        parseInfotext(info).forEach(params::put);
        JDiffusionServer.json(ctx, out);
    }

    /** A JSON-encoded string chunk (SaveImage writes extra_pnginfo values as JSON) back to its text. */
    private static String unquote(String v) {
        if (v.length() >= 2 && v.startsWith("\"") && v.endsWith("\"")) {
            try {
                return PromptStore.JSON.readTree(v).asText();
            } catch (IOException e) {
                return v;
            }
        }
        return v;
    }

    /** A1111's parse_generation_parameters, simply: Prompt, Negative prompt, then the "Key: value" pairs. */
    static Map<String, String> parseInfotext(String info) {
        Map<String, String> out = new LinkedHashMap<>();
        if (info.isBlank()) {
            return out;
        }
        String[] lines = info.strip().split("\n");
        String last = lines[lines.length - 1];
        int paramsLine = last.matches("^(?:[A-Za-z][A-Za-z0-9 ]*: [^,]*(?:, |$))+.*") && lines.length >= 1
                ? lines.length - 1 : lines.length;
        StringBuilder prompt = new StringBuilder();
        StringBuilder negative = null;
        for (int i = 0; i < paramsLine; i++) {
            String l = lines[i];
            if (l.startsWith("Negative prompt:")) {
                negative = new StringBuilder(l.substring("Negative prompt:".length()).strip());
            } else if (negative != null) {
                negative.append('\n').append(l);
            } else {
                prompt.append(prompt.isEmpty() ? "" : "\n").append(l);
            }
        }
        out.put("Prompt", prompt.toString());
        out.put("Negative prompt", negative == null ? "" : negative.toString());
        if (paramsLine < lines.length) {
            var m = java.util.regex.Pattern.compile("\\s*([\\w ]+):\\s*(\"(?:\\\\.|[^\\\\\"])+\"|[^,]*)(?:,|$)")
                    .matcher(last);
            while (m.find()) {
                String k = m.group(1).strip();
                String v = m.group(2).strip();
                if (v.startsWith("\"") && v.endsWith("\"") && v.length() >= 2) {
                    v = v.substring(1, v.length() - 1);
                }
                out.put(k, v);
                if (k.equals("Size") && v.matches("\\d+x\\d+")) {
                    out.put("Size-1", v.split("x")[0]);
                    out.put("Size-2", v.split("x")[1]);
                }
            }
        }
        return out;
    }

    private void memory(Context ctx) {
        Runtime rt = Runtime.getRuntime();
        ObjectNode out = PromptStore.JSON.createObjectNode();
        ObjectNode ram = out.putObject("ram");
        long used = rt.totalMemory() - rt.freeMemory();
        ram.put("free", rt.maxMemory() - used);
        ram.put("used", used);
        ram.put("total", rt.maxMemory());
        out.putObject("cuda").put("error", "no CUDA: jdiffusion runs on the CPU");
        JDiffusionServer.json(ctx, out);
    }

    private void cmdFlags(Context ctx) {
        ServerConfig c = jobs.server().config();
        Path models = jobs.paths().base().resolve("models");
        ObjectNode o = PromptStore.JSON.createObjectNode();
        o.put("api", true);
        o.put("nowebui", false);
        o.put("listen", !c.listen().equals("127.0.0.1") && !c.listen().equals("localhost"));
        o.put("port", jobs.server().port());
        o.put("data_dir", jobs.paths().base().toString());
        o.put("models_dir", models.toString());
        o.put("ckpt_dir", models.resolve("checkpoints").toString());
        o.put("vae_dir", models.resolve("vae").toString());
        o.put("lora_dir", models.resolve("loras").toString());
        o.put("embeddings_dir", models.resolve("embeddings").toString());
        o.put("esrgan_models_path", models.resolve("upscale_models").toString());
        o.put("api_auth", c.authToken() != null && !c.authToken().isBlank() ? "token" : null);
        o.put("lowvram", false);
        o.put("medvram", false);
        o.put("no_half", false);
        o.put("use_cpu", List.of("all").toString());
        o.put("skip_torch_cuda_test", true);
        o.put("device_id", (String) null);
        JDiffusionServer.json(ctx, o);
    }

    // ---- txt2img / img2img ----

    private void generate(Context ctx, boolean img2img) throws IOException {
        JsonNode r = ApiError.readJson(ctx);
        ObjectNode params = ((ObjectNode) r).deepCopy();
        ObjectNode over = r.path("override_settings").isObject() ? checkSettings(r.get("override_settings"))
                : PromptStore.JSON.createObjectNode();
        // types and ranges checked strictly: 422 with A1111's error JSON naming every bad field
        A1111Request q = A1111Request.parse(r, jobs.server().config(), img2img);
        String samplerName = q.sampler == null ? "Euler" : q.sampler;
        String[] sampler = Workflows.sampler(samplerName);
        String scheduler = Workflows.scheduler(q.scheduler, sampler[1]);
        long seed = q.seed;
        if (seed == -1) {
            seed = RANDOM.nextLong(1L << 32);
        }
        int width = q.width == null ? 512 : q.width;
        int height = q.height == null ? 512 : q.height;
        int steps = q.steps;
        int batch = q.batch;
        int iterations = q.iterations;
        double cfg = q.cfg;
        double denoise = img2img ? q.denoise : 1.0;
        boolean send = r.path("send_images").asBoolean(true);
        boolean save = r.path("save_images").asBoolean(false);
        String init = null;
        int outW = width;
        int outH = height;
        if (img2img) {
            JsonNode images = r.path("init_images");
            if (!images.isArray() || images.isEmpty()) {
                throw ApiError.status(400, "img2img needs init_images (base64 images)");
            }
            BufferedImage image = jobs.decodeBase64(images.get(0).asText(), "init_images[0]");
            init = jobs.saveInput(image, "sdapi");
            if (image.getWidth() == width && image.getHeight() == height) {
                outW = 0; // no resize needed
                outH = 0;
            }
        }
        String checkpoint = jobs.checkpoint(over.path("sd_model_checkpoint").asText(null));
        String vaeSetting = over.has("sd_vae") ? over.path("sd_vae").asText() : options.path("sd_vae").asText();
        String vae = vaeFile(vaeSetting);
        int clipSkip = over.has("CLIP_stop_at_last_layers") ? over.get("CLIP_stop_at_last_layers").asInt()
                : options.path("CLIP_stop_at_last_layers").asInt(1);
        String promptText = text(r, "prompt", "");
        // A1111 writes embeddings by their bare file name: spelled embedding:NAME for the workflow's CLIPTextEncode
        jdiffusion.text.Embeddings embeddings = jdiffusion.text.Embeddings.folders(jobs.paths().folders("embeddings"))
                .a1111Names(true);
        WorkflowEdits.Parsed parsed = WorkflowEdits.parseLoras(embeddings.rewriteA1111(promptText));
        WorkflowEdits.Parsed parsedNeg = WorkflowEdits.parseLoras(embeddings.rewriteA1111(
                text(r, "negative_prompt", "")));
        List<String> loraFiles = new ArrayList<>();
        List<String> loraHashes = new ArrayList<>();
        for (WorkflowEdits.LoraTag t : parsed.loras()) {
            String f = jobs.find("loras", t.name());
            if (f == null) {
                throw ApiError.status(400, "LoRA '" + t.name() + "' is not in models/loras");
            }
            loraFiles.add(f);
            String sha = jobs.sha256(jobs.paths().resolve("loras", f));
            loraHashes.add(t.name() + ": " + (sha == null ? "" : sha.substring(0, 12)));
        }

        ArrayNode images = PromptStore.JSON.createArrayNode();
        ArrayNode allSeeds = PromptStore.JSON.createArrayNode();
        ArrayNode infotexts = PromptStore.JSON.createArrayNode();
        String samplerLabel = a1111Sampler(samplerName, sampler[0]);
        String scheduleLabel = scheduleLabel(text(r, "scheduler", null), sampler[1]);
        String modelHash = hash(checkpoint);
        for (int it = 0; it < iterations; it++) {
            long s = seed + (long) it * batch;
            Workflows.Settings settings = new Workflows.Settings(checkpoint, parsed.text(), parsedNeg.text(),
                    img2img ? outW : width, img2img ? outH : height, steps, cfg, sampler[0], scheduler, s, batch,
                    denoise, init, "sdapi");
            ObjectNode prompt = Workflows.prompt(settings);
            WorkflowEdits.addLoras(prompt, loraFiles, parsed.loras());
            WorkflowEdits.clipSkip(prompt, clipSkip);
            WorkflowEdits.vae(prompt, vae);
            new ControlNetApi(jobs.server()).apply(r, prompt); // alwayson_scripts.controlnet units, if any
            if (img2img) { // mask, mask_blur, inpainting_fill, inpainting_mask_invert: A1111's inpainting
                InpaintRoutes.a1111Mask(r, prompt, jobs::decodeBase64, image -> jobs.saveInput(image, "sdapi-mask"));
            }
            if (!save) {
                WorkflowEdits.previewOnly(prompt);
            }
            String infotext = infotext(promptText, text(r, "negative_prompt", ""), steps, samplerLabel,
                    scheduleLabel, cfg, s, width, height, modelHash, checkpoint, img2img ? denoise : null, clipSkip,
                    loraHashes);
            ObjectNode extra = PromptStore.JSON.createObjectNode();
            extra.putObject("extra_pnginfo").put("parameters", infotext);
            PromptStore.Entry done = jobs.await(jobs.server().submit(prompt, null, extra, false, null).promptId());
            for (Path p : jobs.outputFiles(done, Workflows.SAVE_NODE)) {
                if (send) {
                    images.add(Base64.getEncoder().encodeToString(Files.readAllBytes(p)));
                }
            }
            for (int b = 0; b < batch; b++) {
                allSeeds.add(s); // one noise draw per batch, as ComfyUI
                infotexts.add(infotext);
            }
        }
        params.put("seed", seed);
        params.put("sampler_name", samplerLabel);
        ObjectNode out = PromptStore.JSON.createObjectNode();
        out.set("images", images);
        out.set("parameters", params);
        ObjectNode info = PromptStore.JSON.createObjectNode();
        info.put("prompt", promptText);
        info.putArray("all_prompts");
        info.put("negative_prompt", text(r, "negative_prompt", ""));
        info.putArray("all_negative_prompts");
        info.put("seed", seed);
        info.set("all_seeds", allSeeds);
        info.put("subseed", -1);
        info.set("all_subseeds", allSeeds.deepCopy());
        info.put("subseed_strength", 0);
        info.put("width", width);
        info.put("height", height);
        info.put("sampler_name", samplerLabel);
        info.put("cfg_scale", cfg);
        info.put("steps", steps);
        info.put("batch_size", batch);
        info.put("restore_faces", false);
        info.putNull("face_restoration_model");
        info.put("sd_model_name", ApiJobs.stem(checkpoint));
        info.put("sd_model_hash", modelHash);
        info.put("sd_vae_name", vae == null ? null : ApiJobs.stem(vae));
        info.putNull("sd_vae_hash");
        info.put("seed_resize_from_w", -1);
        info.put("seed_resize_from_h", -1);
        info.put("denoising_strength", img2img ? denoise : 0);
        info.putObject("extra_generation_params").put("Schedule type", scheduleLabel);
        info.put("index_of_first_image", 0);
        info.set("infotexts", infotexts);
        info.putArray("styles");
        info.put("job_timestamp", java.time.LocalDateTime.now().format(
                java.time.format.DateTimeFormatter.ofPattern("yyyyMMddHHmmss")));
        info.put("clip_skip", clipSkip);
        info.put("is_using_inpainting_conditioning", false);
        info.put("version", VERSION);
        info.put("scheduler", scheduler);
        for (int i = 0; i < allSeeds.size(); i++) {
            ((ArrayNode) info.get("all_prompts")).add(promptText);
            ((ArrayNode) info.get("all_negative_prompts")).add(text(r, "negative_prompt", ""));
        }
        out.put("info", info.toString());
        JDiffusionServer.json(ctx, out);
    }

    /** A1111's infotext: prompt, "Negative prompt: ...", then "Steps: 20, Sampler: Euler a, ...". */
    static String infotext(String prompt, String negative, int steps, String sampler, String schedule, double cfg,
            long seed, int width, int height, String modelHash, String checkpoint, Double denoise, int clipSkip,
            List<String> loraHashes) {
        StringBuilder b = new StringBuilder(prompt);
        if (!negative.isBlank()) {
            b.append("\nNegative prompt: ").append(negative);
        }
        b.append("\nSteps: ").append(steps).append(", Sampler: ").append(sampler).append(", Schedule type: ")
                .append(schedule).append(", CFG scale: ").append(number(cfg)).append(", Seed: ").append(seed)
                .append(", Size: ").append(width).append('x').append(height);
        if (modelHash != null) {
            b.append(", Model hash: ").append(modelHash);
        }
        b.append(", Model: ").append(ApiJobs.stem(checkpoint));
        if (denoise != null) {
            b.append(", Denoising strength: ").append(number(denoise));
        }
        if (clipSkip > 1) {
            b.append(", Clip skip: ").append(clipSkip);
        }
        if (!loraHashes.isEmpty()) {
            b.append(", Lora hashes: \"").append(String.join(", ", loraHashes)).append('"');
        }
        b.append(", Version: ").append(VERSION);
        return b.toString();
    }

    private static String number(double v) {
        return v == Math.rint(v) ? Long.toString((long) v) : Double.toString(v);
    }

    /** A1111's display name for the sampler asked for ("DPM++ 2M Karras" shows as "DPM++ 2M"). */
    private static String a1111Sampler(String asked, String comfy) {
        for (String[] s : samplerList()) {
            if (s[2].equals(comfy)) {
                return s[0];
            }
        }
        return asked;
    }

    private static String scheduleLabel(String asked, String fromSampler) {
        String name = asked != null && !asked.isBlank() ? asked : fromSampler != null ? fromSampler : "automatic";
        for (Object[] s : SCHEDULERS) {
            if (((String) s[0]).equalsIgnoreCase(name) || ((String) s[1]).equalsIgnoreCase(name)) {
                return (String) s[1];
            }
        }
        return name;
    }

    private static int intIn(JsonNode r, String key, int def, int min, int max) {
        JsonNode v = r.get(key);
        if (v == null || v.isNull()) {
            return def;
        }
        if (!v.isIntegralNumber() || !v.canConvertToInt()) {
            throw ApiError.status(422, key + " must be an integer, not " + v);
        }
        int i = v.asInt();
        if (i < min || i > max) {
            throw ApiError.status(422, key + " must be in " + min + ".." + max + ", not " + i);
        }
        return i;
    }

    private static String text(JsonNode r, String key, String def) {
        JsonNode v = r.get(key);
        return v != null && v.isTextual() ? v.asText() : def;
    }
}
