import type { FirstFactor } from './first-factor.js';

/** The appliance already checked the password (first_factor: none). */
export const noFirstFactor: FirstFactor = {
  type: 'none',
  check() {
    return { kind: 'accept' };
  },
};
