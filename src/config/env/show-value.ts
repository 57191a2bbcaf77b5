import { CONTROLLER_ENV_VARS } from "./controller-env-vars.js";

const SECRET_VARS = new Set(CONTROLLER_ENV_VARS.filter((v) => v.secret).map((v) => v.name));

/** A secret as the logs may show it: its length only. */
export function mask(value: string): string {
  return `**** (${value.length} chars)`;
}

/** How a bad value is shown in an error: masked when secret, shortened and quoted otherwise. */
export function showValue(name: string, value: string): string {
  if (SECRET_VARS.has(name)) return mask(value);
  const short = value.length > 80 ? `${value.slice(0, 77)}...` : value;
  return JSON.stringify(short);
}
