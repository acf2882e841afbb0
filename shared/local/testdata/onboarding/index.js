// Calls chat completions once and prints the answer. The OpenAI client reads
// OPENAI_API_KEY (a kve token, safe to commit) and OPENAI_BASE_URL (kve's
// proxy) from the environment, which `npm run dev` loads from .env.
import OpenAI from "openai";

const client = new OpenAI({ maxRetries: 0 });
const completion = await client.chat.completions.create({
  model: "gpt-4o-mini",
  messages: [{ role: "user", content: "Say hello." }],
});
console.log(completion.choices[0].message.content);
