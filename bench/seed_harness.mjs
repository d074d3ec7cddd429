// The seed plugin's own code under Node, serving what bench/sidebyside.py sends voicecall.
//
//   node bench/seed_harness.mjs SEED_BUNDLE PORT STORE_DIR ACCOUNT_SID AUTH_TOKEN
//
// SEED_BUNDLE is the seed's TypeScript (clawdbot's extensions/voice-call, fetched from its npm
// package by bench/sidebyside.py into ~/.cache, never committed) bundled as one ES module that
// exports CallManager, TwilioProvider, VoiceCallWebhookServer and VoiceCallConfigSchema.
//
// Everything on the measured paths is the seed's code: its HTTP server and webhook handler,
// signature check, event parsing, call manager (with its calls.jsonl store), its Media Streams
// handler (ws) and its paced TTS playout (playTtsViaStream: 160-byte chunks, setTimeout(20) each).
// Two seams only, because this machine has no internet: speech recognition is a session that
// drops audio (the seed sends inbound audio to OpenAI, which does the VAD: no VAD here), and
// "TTS" returns 0.25 s of μ-law noise per word. On connect, each stream speaks 40 words, again
// and again, like the voicecall bench server's host.
import { pathToFileURL } from "node:url";

const [bundle, portArg, storeDir, accountSid, authToken] = process.argv.slice(2);
const port = Number(portArg);
const seed = await import(pathToFileURL(bundle).href);

const publicUrl = `http://127.0.0.1:${port}`;
const config = seed.VoiceCallConfigSchema.parse({
  enabled: true,
  provider: "twilio",
  fromNumber: "+14155550199",
  inboundPolicy: "open",
  twilio: { accountSid, authToken },
  serve: { port, bind: "127.0.0.1", path: "/voice/webhook" },
  streaming: { enabled: true, openaiApiKey: "sk-unused-offline", streamPath: "/voice/stream" },
  publicUrl,
  maxConcurrentCalls: 100000,
  maxDurationSeconds: 86400,
});

const provider = new seed.TwilioProvider(
  { accountSid, authToken },
  { publicUrl, streamPath: "/voice/stream" },
);
const manager = new seed.CallManager(config, storeDir);
manager.initialize(provider, `${publicUrl}/voice/webhook`);
const server = new seed.VoiceCallWebhookServer(config, manager, provider);
const media = server.getMediaStreamHandler();
if (!media) throw new Error("the seed did not set up media streaming");

// seam 1: recognition without a network (audio accepted and dropped)
media.config.sttProvider = {
  createSession() {
    return {
      connect: async () => {},
      sendAudio: () => {},
      onPartial: () => {},
      onTranscript: () => {},
      onSpeechStart: () => {},
      waitForTranscript: () => new Promise(() => {}),
      close: () => {},
      isConnected: () => true,
    };
  },
};

// seam 2: "TTS" (0.25 s of speech-like μ-law per word, at once)
const noise = Buffer.alloc(32000);
let x = 12345;
for (let i = 0; i < noise.length; i++) {
  x = (x * 1103515245 + 12345) & 0x7fffffff;
  noise[i] = 0x40 + ((x >> 16) & 0x3f);
}
provider.setTTSProvider({
  async synthesizeForTelephony(text) {
    const bytes = text.trim().split(/\s+/).length * 2000;
    const out = Buffer.alloc(bytes);
    for (let o = 0; o < bytes; o += noise.length) noise.copy(out, o, 0, Math.min(noise.length, bytes - o));
    return out;
  },
});
provider.setMediaStreamHandler(media);

// every stream talks: 40 words, again and again, through the seed's provider.playTts
const talking = new Set();
const onConnect = media.config.onConnect;
media.config.onConnect = (callSid, streamSid) => {
  onConnect?.(callSid, streamSid);
  talking.add(callSid);
  (async () => {
    while (talking.has(callSid)) {
      try {
        await provider.playTts({ callId: callSid, providerCallId: callSid, text: "word ".repeat(40) });
      } catch {
        await new Promise((r) => setTimeout(r, 300));
      }
    }
  })();
};
const onDisconnect = media.config.onDisconnect;
media.config.onDisconnect = (callSid) => {
  talking.delete(callSid);
  onDisconnect?.(callSid);
};

await server.start();
process.stderr.write(`seed harness listening on ${publicUrl}\n`);
process.on("SIGTERM", async () => {
  await server.stop().catch(() => {});
  process.exit(0);
});
